"""An independent reading of the rules, straight from the CSV files, for checking the service.

Deliberately written without services.banner: plain csv, plain sorting, Decimal sums.
"""

from __future__ import annotations

import csv
from collections import defaultdict
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path


@dataclass(frozen=True)
class Expected:
    x: int
    # banners the rules rank (the whole set, unless a random fill completes it)
    ranked: tuple[int, ...]
    size: int
    campaign_banners: frozenset[int]
    # the rule's name, as the service reports it
    rule: str


def expected_sets(dataset: Path, quarter: int) -> dict[int, Expected]:
    folder = dataset / str(quarter)
    shown: dict[int, set[int]] = defaultdict(set)
    with (folder / f"impressions_{quarter}.csv").open() as f:
        for row in csv.DictReader(f):
            shown[int(row["campaign_id"])].add(int(row["banner_id"]))
    click_owner: dict[int, tuple[int, int]] = {}
    clicks: dict[int, dict[int, int]] = defaultdict(lambda: defaultdict(int))
    with (folder / f"clicks_{quarter}.csv").open() as f:
        for row in csv.DictReader(f):
            campaign, banner = int(row["campaign_id"]), int(row["banner_id"])
            click_owner[int(row["click_id"])] = (campaign, banner)
            clicks[campaign][banner] += 1
    revenue: dict[int, dict[int, Decimal]] = defaultdict(lambda: defaultdict(Decimal))
    with (folder / f"conversions_{quarter}.csv").open() as f:
        for row in csv.DictReader(f):
            owner = click_owner.get(int(row["click_id"]))
            if owner:
                revenue[owner[0]][owner[1]] += Decimal(row["revenue"])
    result = {}
    for campaign in set(shown) | set(clicks):
        every = frozenset(shown[campaign] | set(clicks[campaign]))
        earning = sorted(
            revenue[campaign], key=lambda b: (-revenue[campaign][b], -clicks[campaign][b], b)
        )
        x = len(earning)
        if x >= 5:
            ranked = tuple(earning[:10])
            rule = "top10_by_revenue" if x >= 10 else "top_x_by_revenue"
            result[campaign] = Expected(x, ranked, len(ranked), every, rule)
            continue
        others = sorted(
            (b for b in clicks[campaign] if b not in revenue[campaign]),
            key=lambda b: (-clicks[campaign][b], b),
        )
        ranked = tuple(earning + others)[:5]
        if x:
            rule = "revenue_then_clicks"
        else:
            rule = "top5_by_clicks" if len(ranked) == 5 else "clicks_then_random"
        result[campaign] = Expected(x, ranked, min(5, len(every)), every, rule)
    return result
