"""What the simulated users ask for: skewed ids, pages, events, the campaigns to show. Standard
library only (the locustfile imports it inside the stock locust image; the tests import it too).
"""

from __future__ import annotations

import random
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from decimal import Decimal

# The recommender's demo data has 10,000 users (the test cluster 300; ids above are unknown
# users, who get explore categories only: still a cacheable answer).
RECOMMENDER_USERS = 10_000
PRODUCT_PAGES = 1_000
CATEGORIES = ("electronics", "books", "fashion", "home", "sports", "toys", "garden", "music")
# (first, last) campaign of each dataset the cluster may serve: the generated one (the default of
# `make run`) and DataChef's original. Every campaign of both is in all four quarters, so a run
# that crosses a quarter boundary asks for nothing that disappears.
KNOWN_DATASETS: tuple[tuple[int, int], ...] = ((1001, 1024), (1, 50))


def skewed(limit: int, rng: random.Random) -> int:
    """An id in 1..limit drawn log-uniformly: id 1 is asked for about as often as ids
    limit/10..limit together, like the readers of a shop (a few very often, a long tail)."""
    return max(1, min(limit, int((limit + 1) ** rng.random())))


def page_id(rng: random.Random) -> str:
    """A page of a shop: the home page a third of the time, then search, then skewed products."""
    roll = rng.random()
    if roll < 0.3:
        return "home"
    if roll < 0.4:
        return "search"
    return f"product-{skewed(PRODUCT_PAGES, rng)}"


def event(rng: random.Random) -> dict[str, object]:
    """A search (two thirds) or a purchase, as the shop reports them to the recommender."""
    category = rng.choice(CATEGORIES)
    if rng.random() < 2 / 3:
        return {"type": "search", "category": category, "query": f"{category} deals"}
    amount = Decimal(rng.randint(100, 20_000)) / 100
    return {"type": "purchase", "category": category, "amount": str(amount)}


def parse_ids(spec: str) -> list[int]:
    """'1001-1024,7' -> [1001, ..., 1024, 7]; raises ValueError on anything else."""
    ids: list[int] = []
    for part in spec.replace(" ", "").split(","):
        if not part:
            continue
        first, sep, last = part.partition("-")
        low = int(first)
        high = int(last) if sep else low
        if low < 1 or high < low:
            raise ValueError(f"bad id range {part!r}")
        ids.extend(range(low, high + 1))
    if not ids:
        raise ValueError("no ids given")
    return ids


Fetch = Callable[[str], int]


def http_status(url: str, timeout_s: float = 5.0) -> int:
    """The status of a GET (0: no answer)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:  # noqa: S310 - http(s) only
            response.read()
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return 0


def discover_campaigns(
    host: str, override: str | None = None, fetch: Fetch = http_status
) -> list[int]:
    """The campaigns to show: `override` (LOADTEST_CAMPAIGNS, e.g. '1001-1024') if given, else
    the known dataset whose first and last campaign the cluster serves. Raises LookupError."""
    if override:
        return parse_ids(override)
    base = host.rstrip("/")
    if not base.startswith(("http://", "https://")):
        raise LookupError(f"host {host!r} is not an http(s) URL")
    for first, last in KNOWN_DATASETS:
        if all(fetch(f"{base}/api/campaigns/{c}/banners") == 200 for c in (first, last)):
            return list(range(first, last + 1))
    raise LookupError(
        f"{base} serves none of the known datasets {KNOWN_DATASETS}; "
        "set LOADTEST_CAMPAIGNS (e.g. 1001-1024) to the campaigns it has"
    )


def batch_ids(size: int, rng: random.Random) -> list[int]:
    """`size` distinct skewed user ids (a page showing several users' picks)."""
    ids: set[int] = set()
    while len(ids) < size:
        ids.add(skewed(RECOMMENDER_USERS, rng))
    return sorted(ids)


def pick(items: Sequence[int], rng: random.Random) -> int:
    """A campaign, the first ones more often (a few campaigns run on busy pages)."""
    return items[skewed(len(items), rng) - 1]
