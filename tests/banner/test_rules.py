"""Every branch and boundary of the serving rules, ties at the cut, short campaigns, quarters."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.banner.rules import BannerStats, quarter_of, select


def converting(n: int, *, start: int = 100) -> list[BannerStats]:
    """n converting banners, revenue n..1 (banner start has the most)."""
    return [
        BannerStats(start + i, clicks=1, conversions=1, revenue=Decimal(n - i)) for i in range(n)
    ]


def clicked(n: int, *, start: int = 500) -> list[BannerStats]:
    """n clicked, non-converting banners, clicks n..1."""
    return [BannerStats(start + i, clicks=n - i) for i in range(n)]


def everyone(*groups: list[BannerStats], extra: range = range(900, 920)) -> list[int]:
    return [s.banner_id for g in groups for s in g] + list(extra)


@pytest.mark.parametrize(
    ("x", "size", "rule"),
    [
        (10, 10, "top10_by_revenue"),
        (11, 10, "top10_by_revenue"),
        (25, 10, "top10_by_revenue"),
        (9, 9, "top_x_by_revenue"),
        (5, 5, "top_x_by_revenue"),
    ],
)
def test_five_or_more_converting_banners_serve_the_top_by_revenue(
    x: int, size: int, rule: str
) -> None:
    stats = converting(x) + clicked(20)
    chosen = select(1, 7, stats, everyone(stats))
    assert chosen.x == x
    assert chosen.rule == rule
    assert chosen.banners == tuple(range(100, 100 + size))


@pytest.mark.parametrize("x", [1, 2, 4])
def test_one_to_four_converting_then_most_clicked(x: int) -> None:
    stats = converting(x) + clicked(8)
    chosen = select(2, 7, stats, everyone(stats))
    assert chosen.x == x
    assert chosen.rule == "revenue_then_clicks"
    assert chosen.banners == tuple(range(100, 100 + x)) + tuple(range(500, 500 + 5 - x))


def test_one_to_four_fills_at_random_when_too_few_clicked_others() -> None:
    stats = converting(2) + clicked(1)
    chosen = select(2, 7, stats, everyone(stats))
    assert chosen.banners[:3] == (100, 101, 500)
    assert len(chosen.banners) == 5
    assert set(chosen.banners[3:]) <= set(range(900, 920))


def test_no_conversions_serves_top_five_by_clicks() -> None:
    stats = clicked(9)
    chosen = select(3, 7, stats, everyone(stats))
    assert chosen.x == 0
    assert chosen.rule == "top5_by_clicks"
    assert chosen.banners == (500, 501, 502, 503, 504)


@pytest.mark.parametrize("n_clicked", [0, 1, 4])
def test_no_conversions_and_few_clicks_fill_at_random_reproducibly(n_clicked: int) -> None:
    stats = clicked(n_clicked)
    chosen = select(3, 7, stats, everyone(stats))
    assert chosen.rule == "clicks_then_random"
    assert chosen.banners[:n_clicked] == tuple(range(500, 500 + n_clicked))
    assert len(set(chosen.banners)) == 5
    assert set(chosen.banners[n_clicked:]) <= set(range(900, 920))
    # The same every time, on every instance; another campaign or quarter draws differently.
    assert select(3, 7, stats, everyone(stats)) == chosen
    others = {select(q, c, stats, everyone(stats)).banners for q in (1, 2, 4) for c in (8, 9)}
    assert len(others | {chosen.banners}) > 1


@pytest.mark.parametrize("total", [1, 3, 4])
def test_a_campaign_with_fewer_than_five_banners_serves_all_it_has(total: int) -> None:
    stats = clicked(1)
    chosen = select(1, 7, stats, everyone(stats, extra=range(900, 900 + total - 1)))
    assert sorted(chosen.banners) == sorted([500, *range(900, 900 + total - 1)])


def test_revenue_tie_at_the_cut_is_broken_by_clicks() -> None:
    stats = [
        *converting(9),
        BannerStats(300, clicks=5, conversions=1, revenue=Decimal("0.5")),
        BannerStats(200, clicks=9, conversions=1, revenue=Decimal("0.5")),
    ]
    chosen = select(1, 7, stats, everyone(stats))
    assert chosen.banners[-1] == 200
    assert 300 not in chosen.banners


def test_full_tie_at_the_cut_is_broken_by_banner_id() -> None:
    stats = [
        *converting(9),
        BannerStats(301, clicks=5, conversions=1, revenue=Decimal("0.5")),
        BannerStats(300, clicks=5, conversions=1, revenue=Decimal("0.5")),
    ]
    chosen = select(1, 7, stats, everyone(stats))
    assert chosen.banners[-1] == 300
    assert len(chosen.banners) == 10


def test_conversions_count_even_with_zero_revenue() -> None:
    stats = [BannerStats(100 + i, clicks=1, conversions=1, revenue=Decimal(0)) for i in range(5)]
    assert select(1, 7, stats, everyone(stats)).rule == "top_x_by_revenue"


@given(
    st.lists(st.tuples(st.integers(0, 20), st.integers(0, 3), st.integers(0, 50)), max_size=40),
    st.integers(0, 30),
)
def test_sets_are_distinct_banners_of_the_campaign_and_sized_by_the_rules(
    rows: list[tuple[int, int, int]], extra: int
) -> None:
    stats = [
        BannerStats(100 + i, clicks=c, conversions=v, revenue=Decimal(r) if v else Decimal(0))
        for i, (c, v, r) in enumerate(rows)
        if c or v
    ]
    banners = everyone(stats, extra=range(900, 900 + extra))
    chosen = select(1, 7, stats, banners)
    assert len(set(chosen.banners)) == len(chosen.banners)
    assert set(chosen.banners) <= set(banners)
    x = sum(1 for s in stats if s.conversions)
    expected = 10 if x >= 10 else x if x >= 5 else min(5, len(set(banners)))
    assert len(chosen.banners) == expected


@pytest.mark.parametrize(
    ("minute", "quarter"),
    [(0, 1), (14, 1), (15, 2), (29, 2), (30, 3), (44, 3), (45, 4), (59, 4)],
)
def test_quarter_of_the_utc_hour(minute: int, quarter: int) -> None:
    moment = dt.datetime(2026, 11, 22, 13, minute, 59, tzinfo=dt.UTC)
    assert quarter_of(moment) == quarter
    # Another time zone, same instant, same quarter (a +05:30 zone shifts the minutes).
    assert quarter_of(moment.astimezone(dt.timezone(dt.timedelta(hours=5, minutes=30)))) == quarter
