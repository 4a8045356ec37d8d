"""What the simulated users ask for (loadtest/traffic.py), without locust."""

from __future__ import annotations

import random
from collections import Counter
from decimal import Decimal

import pytest
import traffic


def test_skewed_ids_stay_in_range_and_have_a_heavy_head() -> None:
    rng = random.Random(7)
    draws = [traffic.skewed(10_000, rng) for _ in range(20_000)]
    assert min(draws) >= 1
    assert max(draws) <= 10_000
    counts = Counter(draws)
    # Log-uniform: ids 1..10 get about a quarter of the draws, 1,000..10,000 about a quarter too.
    head = sum(counts[i] for i in range(1, 11)) / len(draws)
    tail = sum(n for i, n in counts.items() if i >= 1000) / len(draws)
    assert 0.2 < head < 0.33
    assert 0.2 < tail < 0.3
    assert len(counts) > 1000


def test_pages_are_valid_page_ids() -> None:
    rng = random.Random(1)
    pages = {traffic.page_id(rng) for _ in range(2000)}
    assert {"home", "search"} <= pages
    assert all(p in {"home", "search"} or p.startswith("product-") for p in pages)
    assert all(len(p) <= 128 for p in pages)


def test_events_are_what_the_recommender_accepts() -> None:
    rng = random.Random(3)
    events = [traffic.event(rng) for _ in range(300)]
    kinds = Counter(e["type"] for e in events)
    assert set(kinds) == {"search", "purchase"}
    assert kinds["search"] > kinds["purchase"]
    for e in events:
        assert e["category"] in traffic.CATEGORIES
        if e["type"] == "purchase":
            amount = Decimal(str(e["amount"]))
            assert amount == amount.quantize(Decimal("0.01"))
            assert amount > 0


@pytest.mark.parametrize(
    ("spec", "ids"),
    [("1001-1003", [1001, 1002, 1003]), ("5", [5]), ("1-2, 7", [1, 2, 7])],
)
def test_id_ranges_parse(spec: str, ids: list[int]) -> None:
    assert traffic.parse_ids(spec) == ids


@pytest.mark.parametrize("spec", ["", "0-3", "5-2", "a", "1-b"])
def test_bad_id_ranges_are_refused(spec: str) -> None:
    with pytest.raises(ValueError, match=r"."):
        traffic.parse_ids(spec)


def test_discovery_finds_the_dataset_the_cluster_serves() -> None:
    served = {1, 50}
    asked: list[str] = []

    def fetch(url: str) -> int:
        asked.append(url)
        campaign = int(url.split("/")[-2])
        return 200 if campaign in served else 404

    assert traffic.discover_campaigns("http://gw:8081/", fetch=fetch) == list(range(1, 51))
    assert asked[0] == "http://gw:8081/api/campaigns/1001/banners"


def test_discovery_override_and_failure() -> None:
    assert traffic.discover_campaigns("http://gw", "7-8", fetch=lambda _: 404) == [7, 8]
    with pytest.raises(LookupError, match="LOADTEST_CAMPAIGNS"):
        traffic.discover_campaigns("http://gw", fetch=lambda _: 404)
    with pytest.raises(LookupError):
        traffic.discover_campaigns("", fetch=lambda _: 200)


def test_batches_have_distinct_ids() -> None:
    ids = traffic.batch_ids(20, random.Random(5))
    assert len(ids) == len(set(ids)) == 20


def test_pick_prefers_the_first_items_but_reaches_the_last() -> None:
    rng = random.Random(9)
    items = list(range(1001, 1025))
    picks = Counter(traffic.pick(items, rng) for _ in range(5000))
    assert set(picks) <= set(items)
    assert picks[1001] > picks[1024] > 0
