from __future__ import annotations

import re
from http.cookies import SimpleCookie

from services.banner.visitors import CLOCK_SKEW_S, MAX_CAMPAIGNS, VisitorCookies

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


def test_the_cookie_carries_its_issue_time_and_is_refused_past_its_maximum_age() -> None:
    cookies = VisitorCookies("a-cookie-secret-for-tests", max_age_s=3600)
    visitor = cookies.read(None)
    visitor.saw(7, 70)
    issued = 1_700_000_000
    value = cookies.dump(visitor, now=issued)
    assert f"~{issued}~" in value
    fresh = cookies.read(value, now=issued + 3600)
    assert (fresh.id, fresh.origin, fresh.issued_at) == (visitor.id, "valid", issued)
    assert fresh.served(7)
    assert not fresh.served(8)
    stale = cookies.read(value, now=issued + 3601)
    assert stale.origin == "expired"
    assert stale.id != visitor.id
    assert not stale.served(7)
    # Dated ahead: another replica's clock, a few minutes at most; beyond that it is refused.
    assert cookies.read(value, now=issued - CLOCK_SKEW_S).origin == "valid"
    assert cookies.read(value, now=issued - CLOCK_SKEW_S - 1).origin == "invalid"


def test_a_cookie_without_an_issue_time_is_not_a_valid_visitor() -> None:
    # The format before the issue time was signed: it cannot prove its age.
    legacy = COOKIES._signer.sign(f"{'a' * 32}~1_125").decode()
    visitor = COOKIES.read(legacy)
    assert visitor.origin == "invalid"
    assert visitor.id != "a" * 32
    assert not visitor.served(1)
    assert COOKIES.read(None).origin == COOKIES.read("").origin == "none"


def test_the_set_cookie_header_is_httponly_samesite_and_secure_when_configured() -> None:
    plain = VisitorCookies("a-cookie-secret-for-tests", max_age_s=600)
    secure = VisitorCookies("a-cookie-secret-for-tests", max_age_s=600, secure=True)
    for cookies, want_secure in ((plain, False), (secure, True)):
        header = cookies.set_cookie(cookies.read(None))
        parsed: SimpleCookie = SimpleCookie()
        parsed.load(header)
        morsel = parsed["quartet_visitor"]
        assert morsel["httponly"] is True
        assert morsel["samesite"] == "Lax"
        assert morsel["max-age"] == "600"
        assert morsel["path"] == "/"
        assert bool(morsel["secure"]) is want_secure
        assert cookies.read(morsel.value).origin == "valid"
