from __future__ import annotations

import re
from http.cookies import SimpleCookie

from services.banner.visitors import MAX_CAMPAIGNS, VisitorCookies

COOKIES = VisitorCookies("a-cookie-secret-for-tests")


def test_round_trip_keeps_the_visitor_and_the_last_banners() -> None:
    visitor = COOKIES.read(None)
    assert visitor.changed
    visitor.saw(1, 125)
    visitor.saw(2, 300)
    again = COOKIES.read(COOKIES.dump(visitor))
    assert again.id == visitor.id
    assert again.last_banner(1) == 125
    assert again.last_banner(2) == 300
    assert not again.changed


def test_a_tampered_or_foreign_cookie_is_a_new_visitor() -> None:
    visitor = COOKIES.read(None)
    visitor.saw(1, 125)
    value = COOKIES.dump(visitor)
    forged = value.replace("1_125", "1_126")
    other_secret = VisitorCookies("another-secret-entirely").dump(visitor)
    for raw in (forged, other_secret, "garbage", value[:-3]):
        stranger = COOKIES.read(raw)
        assert stranger.id != visitor.id
        assert stranger.last_banner(1) is None


def test_only_the_most_recent_campaigns_are_kept() -> None:
    visitor = COOKIES.read(None)
    for campaign in range(MAX_CAMPAIGNS + 10):
        visitor.saw(campaign, 1000 + campaign)
    visitor.saw(15, 7)  # seen again: now the most recent
    kept = COOKIES.read(COOKIES.dump(visitor))
    assert len(kept.last) == MAX_CAMPAIGNS
    assert kept.last_banner(0) is None
    assert kept.last_banner(15) == 7
    assert list(kept.last)[-1] == "15"


def test_the_value_needs_no_quoting_in_a_cookie_header() -> None:
    visitor = COOKIES.read(None)
    for campaign in range(MAX_CAMPAIGNS):
        visitor.saw(2**32 - 1 - campaign, 2**32 - 1)
    value = COOKIES.dump(visitor)
    assert re.fullmatch(r"[A-Za-z0-9._~-]+", value)
    assert len(value) < 4000
    parsed: SimpleCookie = SimpleCookie()
    parsed.load(f"quartet_visitor={value}")
    assert parsed["quartet_visitor"].value == value
