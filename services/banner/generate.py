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

The role plan that makes every quarter reach every branch of the serving rules is
dataset_plan.py's.
"""

from __future__ import annotations

import argparse
import csv
import logging
import random
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from services.banner.dataset_format import HEADERS, csv_name
from services.banner.dataset_plan import (
    Activity,
    Campaign,
    QuarterPlan,
    make_campaigns,
    plan_quarter,
)
from services.banner.images import draw_banner
from services.banner.rules import QUARTERS

log = logging.getLogger("services.banner.generate")

FIRST_CLICK_ID = 900_000_001
FIRST_CONVERSION_ID = 950_000_001


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
    with (directory / csv_name(kind, quarter)).open("w", newline="", encoding="utf-8") as out:
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
