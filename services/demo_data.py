"""Seed a fresh cluster with the demo data: banners (generated, then ingested) and events.

    python -m services.demo_data --banner-dir DIR [--banner-dir DIR2 ...] [--users N]
                                                                (MYSQL_DSN, REDIS_SHARDS from env)

Every step is idempotent, so the local cluster runs this on every start and the container
deployments run it as a one-shot job: the banner dataset is generated only into an empty (or
missing) DIR, ingesting rejects files it already holds, and events are generated only into empty
tables. `--banner-dir` naming a directory of real data (the original DataChef layout) ingests
that instead; nothing is generated into a directory that already has files. Several
`--banner-dir`s are ingested one after the other into the same tables: their ids must not overlap
(the generator's keep clear of DataChef's, so the two datasets can be served side by side).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from services.banner import generate as banner_generate
from services.banner.ingest import ingest
from services.common.dsn_arg import add_dsn_argument, dsn_of
from services.common.settings import parse_shards
from services.recommender import generate as events_generate

# The demo events' seed: fixed, so every deployment's demo recommendations are the same.
EVENTS_SEED = 7


def seed(banner_dirs: list[Path], dsn: str, shards: dict[str, str], *, users: int) -> None:
    for banner_dir in banner_dirs:
        if not banner_dir.is_dir() or not any(banner_dir.iterdir()):
            print(f"generating the demo banner dataset in {banner_dir}", flush=True)
            # The generator's default seed, the one the banner pods' initContainer
            # (`python -m services.banner.generate`) uses: their images match this dataset.
            banner_generate.generate(banner_dir)
        print(f"ingesting banner data from {banner_dir}", flush=True)
        ingest(banner_dir, dsn, shards, lambda line: print(line, flush=True))
    print("demo recommender events (only into empty tables)", flush=True)
    events_generate.generate(
        dsn, users=users, per_user=events_generate.EVENTS_PER_USER, seed=EVENTS_SEED, if_empty=True
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--banner-dir", type=Path, action="append", required=True)
    parser.add_argument("--users", type=int, default=10_000, help="users of the demo events")
    add_dsn_argument(parser)
    args = parser.parse_args()
    dsn = dsn_of(args)
    if args.users < 1:
        sys.exit("--users must be positive")
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stdout)
    shards = parse_shards(os.environ.get("REDIS_SHARDS", ""))
    seed(args.banner_dir, dsn, shards, users=args.users)


if __name__ == "__main__":
    main()
