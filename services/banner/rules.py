"""Which banners a campaign serves in a quarter: DataChef's revenue rules, as pure functions.

X = the campaign's distinct banners with at least one conversion in the quarter.

    X >= 10   the top 10 banners by revenue
    5..9      the top X banners by revenue
    1..4      the X converting banners, then the most-clicked other banners, up to 5
    0         the top 5 banners by clicks; fewer than 5 clicked: random other banners up to 5

Order everywhere: revenue desc, then clicks desc, then banner_id asc, so a set is deterministic
and never longer than its N. Where a rule runs out of ranked banners (1..4 with too few clicked
others, 0 with fewer than 5 clicked) the rest is filled with other banners of the campaign picked
at random, seeded by (quarter, campaign), so every instance and every recomputation agrees. A
campaign with fewer than 5 banners serves all it has.
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal

QUARTERS = (1, 2, 3, 4)
MAX_SET = 10
MIN_SET = 5


@dataclass(frozen=True)
class BannerStats:
    banner_id: int
    clicks: int = 0
    conversions: int = 0
    revenue: Decimal = Decimal(0)


@dataclass(frozen=True)
class BannerSet:
    quarter: int
    campaign_id: int
    x: int
    rule: str
    banners: tuple[int, ...]


def quarter_of(moment: dt.datetime) -> int:
    """Minutes 0-14 of the UTC hour are quarter 1, 15-29 quarter 2, 30-44 quarter 3, 45-59 q 4."""
    return moment.astimezone(dt.UTC).minute // 15 + 1


def _by_revenue(stats: BannerStats) -> tuple[Decimal, int, int]:
    return (-stats.revenue, -stats.clicks, stats.banner_id)


def _by_clicks(stats: BannerStats) -> tuple[int, int]:
    return (-stats.clicks, stats.banner_id)


def select(
    quarter: int, campaign_id: int, stats: Iterable[BannerStats], banners: Iterable[int]
) -> BannerSet:
    """The set to serve. `stats` holds the banners with clicks or conversions; `banners` is every
    banner the campaign showed in the quarter (impressions), for the random fill."""
    ranked = {s.banner_id: s for s in stats}
    every = sorted(set(banners) | set(ranked))
    converting = sorted((s for s in ranked.values() if s.conversions > 0), key=_by_revenue)
    x = len(converting)
    if x >= MAX_SET:
        return BannerSet(quarter, campaign_id, x, "top10_by_revenue", _ids(converting[:MAX_SET]))
    if x >= MIN_SET:
        return BannerSet(quarter, campaign_id, x, "top_x_by_revenue", _ids(converting))
    chosen = _ids(converting)
    clicked = sorted(
        (s for s in ranked.values() if s.conversions == 0 and s.clicks > 0), key=_by_clicks
    )
    chosen += _ids(clicked[: MIN_SET - len(chosen)])
    rule = "revenue_then_clicks" if x else "top5_by_clicks"
    if len(chosen) < MIN_SET:
        rest = [b for b in every if b not in chosen]
        fill = random.Random(f"{quarter}:{campaign_id}").sample(
            rest, min(len(rest), MIN_SET - len(chosen))
        )
        chosen += tuple(fill)
        if x == 0:
            rule = "clicks_then_random"
    return BannerSet(quarter, campaign_id, x, rule, chosen)


def _ids(stats: Iterable[BannerStats]) -> tuple[int, ...]:
    return tuple(s.banner_id for s in stats)
