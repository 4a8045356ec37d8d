"""The plan of a synthetic banner dataset: its campaigns, and each quarter's clicks, conversions
and impressions per banner, before anything is written (generate.py writes it).

Role plan. The serving rules (rules.py) branch on X, the number of a campaign's banners with a
conversion in the quarter. Rather than hope that randomness reaches every branch, each quarter
gives campaigns explicit roles, and randomness only fills in the rest: which banners, click
counts, revenue amounts, extra impressions. Campaign 1001 is small (3 banners), every third
campaign from 1002 on is large (at least 14 banners), the others are normal (at least 6). In
quarter q (0-based), role i of a kind goes to campaign (i + 3q) mod n of that kind, so a campaign
plays different roles in different quarters:

    large   TEN            X = 10
            OVER_TEN       X = 11..13
            TIE_ON_CLICKS  X = 11..13; the 10th and 11th by revenue have equal revenue, not clicks
            TIE_ON_ID      X = 11..13; the 10th and 11th tie on revenue and clicks
    normal  SOME           X = 5..9
            FEW            X = 1..4, enough clicked others to reach 5
            FEW_THIN       X = 1..4, too few clicked others to reach 5
            CLICKED        X = 0, 6 or more banners clicked
            SPARSE         X = 0, 1..4 banners clicked
    small   FEW, SPARSE, SILENT (no clicks at all), FEW in quarters 1, 2, 3, 4

A kind with fewer campaigns than roles drops its last roles; campaigns without a role get a
random X and random clicks. With the default 24 campaigns, whatever the seed:

    quarter  TEN   OVER_TEN  TIE_ON_CLICKS  TIE_ON_ID  SOME  FEW   FEW_THIN  CLICKED  SPARSE
    1        1002  1005      1008           1011       1003  1004  1006      1007     1009
    2        1011  1014      1017           1020       1007  1009  1010      1012     1013
    3        1020  1023      1002           1005       1012  1013  1015      1016     1018
    4        1005  1008      1011           1014       1016  1018  1019      1021     1022
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import assert_never

FIRST_CAMPAIGN_ID = 1001
FIRST_BANNER_ID = 10_001
SMALL_SIZE = 3
MIN_LARGE_SIZE = 14  # room for X = 13 and a banner without conversions
MIN_NORMAL_SIZE = 6  # room for 6 clicked banners (CLICKED) or a random fill (FEW_THIN)
# Revenue of one conversion in micro-units: the original's range, 0.3 to 1.5. Integers keep
# revenue sums exact, which the ties at the cut depend on.
AMOUNT_MICROS = (300_000, 1_500_000)
ROLE_SHIFT = 3


class Kind(Enum):
    SMALL = "small"
    LARGE = "large"
    NORMAL = "normal"


class Role(Enum):
    TEN = "TEN"
    OVER_TEN = "OVER_TEN"
    TIE_ON_CLICKS = "TIE_ON_CLICKS"
    TIE_ON_ID = "TIE_ON_ID"
    SOME = "SOME"
    FEW = "FEW"
    FEW_THIN = "FEW_THIN"
    CLICKED = "CLICKED"
    SPARSE = "SPARSE"
    SILENT = "SILENT"
    FILLER = "FILLER"


# In order of importance: a kind with fewer campaigns than roles keeps the first ones.
ROLES = {
    Kind.LARGE: (Role.TEN, Role.OVER_TEN, Role.TIE_ON_CLICKS, Role.TIE_ON_ID),
    Kind.NORMAL: (Role.SOME, Role.FEW, Role.FEW_THIN, Role.CLICKED, Role.SPARSE),
}
SMALL_ROLES = (Role.FEW, Role.SPARSE, Role.SILENT, Role.FEW)  # by quarter


@dataclass(frozen=True)
class Campaign:
    campaign_id: int
    kind: Kind
    banner_ids: tuple[int, ...]


@dataclass
class Activity:
    """One banner in one quarter: its clicks and the revenue (micros) of each conversion."""

    clicks: int = 0
    revenues: list[int] = field(default_factory=list)


@dataclass
class QuarterPlan:
    activity: dict[int, Activity]  # every banner of every campaign
    impressions: Counter[int]


def make_campaigns(rng: random.Random, count: int, banners: int) -> list[Campaign]:
    catalog: list[Campaign] = []
    next_banner = FIRST_BANNER_ID
    for index in range(count):
        kind = Kind.SMALL if index == 0 else Kind.LARGE if index % 3 == 1 else Kind.NORMAL
        size = campaign_size(rng, kind, banners)
        ids = tuple(range(next_banner, next_banner + size))
        catalog.append(Campaign(FIRST_CAMPAIGN_ID + index, kind, ids))
        next_banner += size
    return catalog


def campaign_size(rng: random.Random, kind: Kind, banners: int) -> int:
    if kind is Kind.SMALL:
        return SMALL_SIZE
    if kind is Kind.LARGE:
        return max(MIN_LARGE_SIZE, banners + rng.randint(1, 4))
    return rng.randint(max(MIN_NORMAL_SIZE, banners - 4), max(MIN_NORMAL_SIZE, banners + 4))


def assign_roles(catalog: Sequence[Campaign], quarter: int) -> dict[int, Role]:
    """campaign_id -> role in `quarter` (1..4), by the plan in the module docstring."""
    shift = ROLE_SHIFT * (quarter - 1)
    roles = {c.campaign_id: Role.FILLER for c in catalog}
    for kind, kind_roles in ROLES.items():
        members = [c.campaign_id for c in catalog if c.kind is kind]
        for i, role in enumerate(kind_roles[: len(members)]):
            roles[members[(i + shift) % len(members)]] = role
    for campaign in catalog:
        if campaign.kind is Kind.SMALL:
            roles[campaign.campaign_id] = SMALL_ROLES[quarter - 1]
    return roles


def plan_quarter(
    rng: random.Random, catalog: Sequence[Campaign], quarter: int, impressions: int
) -> QuarterPlan:
    roles = assign_roles(catalog, quarter)
    activity: dict[int, Activity] = {}
    for campaign in catalog:
        activity.update(campaign_activity(rng, campaign, roles[campaign.campaign_id]))
    return QuarterPlan(activity, spread_impressions(rng, activity, impressions, quarter))


def campaign_activity(rng: random.Random, campaign: Campaign, role: Role) -> dict[int, Activity]:
    x, clicked = shape(rng, role, len(campaign.banner_ids))
    # A random order, so the converting and the tied banners are not always the lowest ids.
    order = rng.sample(campaign.banner_ids, len(campaign.banner_ids))
    activity = {b: Activity() for b in campaign.banner_ids}
    if role in (Role.TIE_ON_CLICKS, Role.TIE_ON_ID):
        activity.update(tied_at_cut(rng, order[:x], same_clicks=role is Role.TIE_ON_ID))
    else:
        activity.update({b: converting(rng, amounts(rng)) for b in order[:x]})
    for banner_id in order[x : x + clicked]:
        activity[banner_id].clicks = rng.randint(1, 25)
    return activity


def shape(rng: random.Random, role: Role, size: int) -> tuple[int, int]:
    """(X, clicked banners without a conversion) for a campaign of `size` banners in `role`."""
    match role:
        case Role.TEN:
            return with_clicked_others(rng, 10, size)
        case Role.OVER_TEN | Role.TIE_ON_CLICKS | Role.TIE_ON_ID:
            return with_clicked_others(rng, rng.randint(11, min(13, size)), size)
        case Role.SOME:
            return with_clicked_others(rng, rng.randint(5, min(9, size)), size)
        case Role.FEW:
            x = rng.randint(1, min(4, size))
            return x, rng.randint(min(5 - x, size - x), size - x)
        case Role.FEW_THIN:
            x = rng.randint(1, min(4, size))
            return x, rng.randint(0, min(4 - x, size - x))
        case Role.CLICKED:
            # More than 5 clicked, so the top-5 cut leaves some out.
            return 0, rng.randint(min(6, size), size)
        case Role.SPARSE:
            return 0, rng.randint(1, min(4, size))
        case Role.SILENT:
            return 0, 0
        case Role.FILLER:
            return with_clicked_others(rng, rng.randint(0, size), size)
        case _:
            assert_never(role)


def with_clicked_others(rng: random.Random, x: int, size: int) -> tuple[int, int]:
    return x, rng.randint(0, size - x)


def amounts(rng: random.Random, count: int = 0) -> list[int]:
    """Revenues (micros) of `count` conversions, 1 to 3 when not given."""
    return [rng.randint(*AMOUNT_MICROS) for _ in range(count or rng.randint(1, 3))]


def converting(rng: random.Random, revenues: list[int]) -> Activity:
    return Activity(clicks=len(revenues) + rng.randint(0, 20), revenues=revenues)


def tied_at_cut(
    rng: random.Random, banner_ids: Sequence[int], *, same_clicks: bool
) -> dict[int, Activity]:
    """Converting banners whose 10th and 11th by revenue have exactly the same revenue: the same
    two amounts, so even a float sum agrees. Their clicks decide between them, or with
    `same_clicks` their ids."""
    tied = amounts(rng, 2)
    cut = sum(tied)
    result = {b: converting(rng, amounts_where(rng, lambda s: s > cut)) for b in banner_ids[:9]}
    tenth = converting(rng, tied)
    extra = 0 if same_clicks else rng.randint(1, 5)
    result[banner_ids[9]] = tenth
    result[banner_ids[10]] = Activity(clicks=tenth.clicks + extra, revenues=list(tied))
    for banner_id in banner_ids[11:]:
        result[banner_id] = converting(rng, amounts_where(rng, lambda s: s < cut))
    return result


def amounts_where(rng: random.Random, accept: Callable[[int], bool]) -> list[int]:
    # The cut lies between 0.6 and 3.0, so a few draws find a total on either side of it.
    while True:
        revenues = amounts(rng)
        if accept(sum(revenues)):
            return revenues


def spread_impressions(
    rng: random.Random, activity: dict[int, Activity], total: int, quarter: int
) -> Counter[int]:
    """Impressions per banner: at least one, and at least as many as clicks; the rest weighted
    by a random popularity."""
    counts = Counter({b: max(1, a.clicks) for b, a in activity.items()})
    floor = counts.total()
    if total < floor:
        raise ValueError(
            f"impressions={total} is too few: quarter {quarter} needs at least {floor} "
            "(one per banner and one per click)"
        )
    ids = list(activity)
    weights = [rng.uniform(0.5, 2.0) for _ in ids]
    counts.update(rng.choices(ids, weights, k=total - floor))
    return counts
