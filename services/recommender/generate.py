"""Fill `searches` and `purchases` with a deterministic synthetic population.

    python -m services.recommender.generate [--users 10000] [--events 24] [--seed 7] [--if-empty]

Users 1..N, each with a handful to a few dozen events (`--events` on average, about one in five a
purchase) over the scoring window (scoring.WINDOW_DAYS), more of them recent. Categories have a
skewed (Zipf-like) popularity, and every user leans towards a few favourite categories, so
recommendations differ from user to user and the global top categories are clear. Content is
fixed by the seed; times are relative to now, so the data never ages out of the scoring window.
MySQL: --dsn, else MYSQL_DSN.
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import sys
import time
from collections.abc import Iterator

from services.common.dsn_arg import add_dsn_argument, dsn_of
from services.common.mysql import connect_blocking
from services.recommender.scoring import WINDOW_DAYS
from services.recommender.store import COUNT_EVENTS, INSERT_PURCHASE, INSERT_SEARCH

CATEGORIES = (
    "electronics",
    "books",
    "fashion",
    "home",
    "sports",
    "toys",
    "beauty",
    "garden",
    "grocery",
    "music",
    "movies",
    "games",
    "automotive",
    "health",
    "pets",
    "office",
    "jewelry",
    "shoes",
    "outdoors",
    "kitchen",
    "baby",
    "art",
    "travel",
    "tools",
    "software",
    "photography",
    "furniture",
    "crafts",
    "watches",
    "bags",
)
CHUNK = 5_000


def _popularity_weights() -> list[float]:
    return [1 / (rank + 1) ** 1.1 for rank in range(len(CATEGORIES))]


def events(users: int, per_user: int, seed: int, now: dt.datetime) -> Iterator[tuple[object, ...]]:
    """("search"|"purchase", user, text, category, at, success|amount) rows, deterministic: after
    the kind, the parameters of store.INSERT_SEARCH or store.INSERT_PURCHASE."""
    rng = random.Random(seed)
    weights = _popularity_weights()
    for user_id in range(1, users + 1):
        favourites = rng.choices(CATEGORIES, weights=weights, k=3)
        for _ in range(max(1, int(rng.expovariate(1 / per_user)))):
            category = (
                rng.choice(favourites)
                if rng.random() < 0.7
                else rng.choices(CATEGORIES, weights=weights)[0]
            )
            # Ages skewed towards the present: recent activity dominates, as in real traffic.
            age = dt.timedelta(
                days=min(WINDOW_DAYS - 1, rng.expovariate(1 / 20)), seconds=rng.randrange(86_400)
            )
            at = (now - age).replace(tzinfo=None, microsecond=0)
            if rng.random() < 0.2:
                amount = round(rng.uniform(5, 500), 2)
                yield (
                    "purchase",
                    user_id,
                    f"{category} item {rng.randrange(1000)}",
                    category,
                    at,
                    amount,
                )
            else:
                yield (
                    "search",
                    user_id,
                    f"{category} {rng.randrange(1000)}",
                    category,
                    at,
                    rng.random() < 0.9,
                )


# Events per user on average: enough history for the scoring to differ between users.
EVENTS_PER_USER = 24


def generate(dsn: str, *, users: int, per_user: int, seed: int, if_empty: bool) -> int:
    conn = connect_blocking(dsn, timeout_s=5)
    try:
        with conn.cursor() as cur:
            cur.execute(COUNT_EVENTS)
            (existing,) = cur.fetchone()
            if if_empty and existing:
                print(f"events already present ({existing}); nothing generated", flush=True)
                return 0
            searches: list[tuple[object, ...]] = []
            purchases: list[tuple[object, ...]] = []
            written = 0
            started = time.monotonic()

            def flush() -> None:
                cur.executemany(INSERT_SEARCH, searches)
                cur.executemany(INSERT_PURCHASE, purchases)
                conn.commit()
                searches.clear()
                purchases.clear()

            for kind, *row in events(users, per_user, seed, dt.datetime.now(dt.UTC)):
                (searches if kind == "search" else purchases).append(tuple(row))
                written += 1
                if len(searches) + len(purchases) >= CHUNK:
                    flush()
                if written % 50_000 == 0:
                    print(f"  {written} events ({time.monotonic() - started:.1f}s)", flush=True)
            flush()
    finally:
        conn.close()
    print(f"generated {written} events for {users} users", flush=True)
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument(
        "--events", type=int, default=EVENTS_PER_USER, help="average events per user"
    )
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--if-empty", action="store_true", help="do nothing if events exist")
    add_dsn_argument(parser)
    args = parser.parse_args()
    dsn = dsn_of(args)
    if args.users < 1 or args.events < 1:
        sys.exit("--users and --events must be positive")
    generate(dsn, users=args.users, per_user=args.events, seed=args.seed, if_empty=args.if_empty)


if __name__ == "__main__":
    main()
