"""Write a synthetic banner dataset in the layout of DataChef's original one.

    python -m services.banner.generate OUT_DIR [--seed 7] [--campaigns 24] [--banners 12]
                                               [--impressions 20000] [--no-images] [--force]

Layout, for the quarters q = 1..4 of the hour (LF line endings, as in the original):

    OUT_DIR/<q>/impressions_<q>.csv     banner_id,campaign_id           one row per impression
    OUT_DIR/<q>/clicks_<q>.csv          click_id,banner_id,campaign_id
    OUT_DIR/<q>/conversions_<q>.csv     conversion_id,click_id,revenue  revenue with 6 decimals
    OUT_DIR/images/image_<banner_id>.png                                300x250, shows the id;
                                                                        odd ids hold JPEG bytes

Ids keep clear of the original's (campaigns up to 50, banners up to about 500, clicks and
conversions below 300 000) so both datasets fit in one database: campaigns from 1001, banners
from 10001 (a banner belongs to one campaign), clicks from 900 000 001 and conversions from
950 000 001, counted on across the quarters so that both are unique in the whole dataset. Every
campaign shows all its banners in every quarter; a conversion belongs to a click of the same
quarter, at most one per click. The same arguments give the same bytes: the only source of
randomness is `random.Random(seed)`.

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

import argparse
import csv
import logging
import random
import sys
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import assert_never

from services.banner.images import draw_banner

log = logging.getLogger("services.banner.generate")

QUARTERS = (1, 2, 3, 4)
FIRST_CAMPAIGN_ID = 1001
FIRST_BANNER_ID = 10_001
FIRST_CLICK_ID = 900_000_001
FIRST_CONVERSION_ID = 950_000_001
HEADERS = {
    "impressions": ("banner_id", "campaign_id"),
    "clicks": ("click_id", "banner_id", "campaign_id"),
    "conversions": ("conversion_id", "click_id", "revenue"),
}

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


@dataclass
class IdCounters:
    click: int = FIRST_CLICK_ID
    conversion: int = FIRST_CONVERSION_ID


def generate(
    out_dir: Path,
    *,
    seed: int = 7,
    campaigns: int = 24,
    banners: int = 12,
    impressions: int = 20_000,
    images: bool = True,
) -> None:
    """Write the dataset into `out_dir` (created if missing), replacing the layout's files."""
    if campaigns < 1 or banners < 1:
        raise ValueError("campaigns and banners must be at least 1")
    rng = random.Random(seed)
    catalog = make_campaigns(rng, campaigns, banners)
    # Every quarter is planned before anything is written, so a bad --impressions writes nothing.
    plans = [plan_quarter(rng, catalog, quarter, impressions) for quarter in QUARTERS]
    campaign_of = {b: c.campaign_id for c in catalog for b in c.banner_ids}
    counters = IdCounters()
    for quarter, plan in zip(QUARTERS, plans, strict=True):
        log.info(write_quarter(out_dir, quarter, plan, campaign_of, rng, counters))
    written = write_images(out_dir / "images", catalog) if images else set()
    remove_stale_images(out_dir / "images", written)
    if images:
        log.info("images: %d -> %s", len(written), out_dir / "images")


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


def write_quarter(
    out_dir: Path,
    quarter: int,
    plan: QuarterPlan,
    campaign_of: dict[int, int],
    rng: random.Random,
    counters: IdCounters,
) -> str:
    """Write the quarter's three files; the summary line."""
    directory = out_dir / str(quarter)
    directory.mkdir(parents=True, exist_ok=True)
    impressions = [b for b, n in plan.impressions.items() for _ in range(n)]
    rng.shuffle(impressions)
    write_csv(directory, "impressions", quarter, ((b, campaign_of[b]) for b in impressions))
    banner_of_click = number_clicks(rng, plan.activity, counters)
    clicks = ((c, b, campaign_of[b]) for c, b in banner_of_click.items())
    write_csv(directory, "clicks", quarter, clicks)
    conversions = number_conversions(convert_clicks(rng, plan.activity, banner_of_click), counters)
    write_csv(directory, "conversions", quarter, conversions)
    return (
        f"quarter {quarter}: {len(impressions)} impressions, {len(banner_of_click)} clicks, "
        f"{len(conversions)} conversions, {len(set(campaign_of.values()))} campaigns -> {directory}"
    )


def number_clicks(
    rng: random.Random, activity: dict[int, Activity], counters: IdCounters
) -> dict[int, int]:
    """click_id -> banner_id, in a shuffled order like a real log, the ids running on."""
    banners = [b for b, a in activity.items() for _ in range(a.clicks)]
    rng.shuffle(banners)
    first = counters.click
    counters.click += len(banners)
    return {first + i: banner_id for i, banner_id in enumerate(banners)}


def convert_clicks(
    rng: random.Random, activity: dict[int, Activity], banner_of_click: dict[int, int]
) -> list[tuple[int, int]]:
    """(click_id, revenue micros) of every conversion, each on its own click of its banner, in
    click order as in the original."""
    clicks_of: dict[int, list[int]] = {}
    for click_id, banner_id in banner_of_click.items():
        clicks_of.setdefault(banner_id, []).append(click_id)
    conversions: list[tuple[int, int]] = []
    for banner_id, banner in activity.items():
        chosen = rng.sample(clicks_of.get(banner_id, []), len(banner.revenues))
        conversions.extend(zip(chosen, banner.revenues, strict=True))
    return sorted(conversions)


def number_conversions(
    conversions: Sequence[tuple[int, int]], counters: IdCounters
) -> list[tuple[int, int, str]]:
    """Rows (conversion_id, click_id, revenue text), the ids running on."""
    first = counters.conversion
    counters.conversion += len(conversions)
    return [
        (first + i, click_id, f"{micros / 1_000_000:.6f}")
        for i, (click_id, micros) in enumerate(conversions)
    ]


def write_csv(directory: Path, kind: str, quarter: int, rows: Iterable[Iterable[object]]) -> None:
    with (directory / f"{kind}_{quarter}.csv").open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(HEADERS[kind])
        writer.writerows(rows)


def write_images(directory: Path, catalog: Sequence[Campaign]) -> set[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written: set[Path] = set()
    for campaign in catalog:
        for banner_id in campaign.banner_ids:
            path = directory / f"image_{banner_id}.png"
            # The original's .png files all hold JPEG bytes; half of ours do, so serving proves
            # on generated data too that the type comes from the bytes, not the name.
            image_format = "JPEG" if banner_id % 2 else "PNG"
            caption = f"campaign {campaign.campaign_id}"
            path.write_bytes(draw_banner(banner_id, caption, image_format=image_format))
            written.add(path)
    return written


def remove_stale_images(directory: Path, written: set[Path]) -> None:
    """A rerun with --force must not leave the images of banners it no longer has."""
    if directory.is_dir():
        for path in directory.glob("image_*.png"):
            if path not in written:
                path.unlink()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m services.banner.generate", description=__doc__.splitlines()[0]
    )
    parser.add_argument("out_dir", type=Path, metavar="OUT_DIR")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--campaigns", type=int, default=24)
    parser.add_argument("--banners", type=int, default=12, help="typical banners per campaign")
    parser.add_argument("--impressions", type=int, default=20_000, help="rows per quarter")
    parser.add_argument("--no-images", dest="images", action="store_false")
    parser.add_argument("--force", action="store_true", help="write into a non-empty OUT_DIR")
    args = parser.parse_args(argv)
    out_dir: Path = args.out_dir
    if out_dir.exists() and not out_dir.is_dir():
        sys.exit(f"{out_dir} exists and is not a directory")
    if out_dir.is_dir() and any(out_dir.iterdir()) and not args.force:
        sys.exit(f"{out_dir} is not empty; pass --force to write into it anyway")
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stdout)
    try:
        generate(
            out_dir,
            seed=args.seed,
            campaigns=args.campaigns,
            banners=args.banners,
            impressions=args.impressions,
            images=args.images,
        )
    except ValueError as exc:
        parser.error(str(exc))


if __name__ == "__main__":
    main()
