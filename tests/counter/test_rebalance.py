"""Resharding with real Redis servers: a shard added, then removed; interrupted runs resumed."""

from __future__ import annotations

import random
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from services.common.ring import ShardRing
from services.counter.rebalance import DONE_PREFIX, TRANSIT_PREFIX
from services.counter.store import LEDGER_BYTES, LEDGER_STREAM
from tests.support.processes import redis_server

PAGES = [f"page-{i}" for i in range(3000)]


@pytest.fixture
def three_shards(tmp_path: Path) -> Iterator[dict[str, str]]:
    with (
        redis_server(tmp_path / "a") as a,
        redis_server(tmp_path / "b") as b,
        redis_server(tmp_path / "c") as c,
    ):
        yield {
            name: f"redis://127.0.0.1:{port}" for name, port in zip("abc", (a, b, c), strict=True)
        }


def _spec(shards: dict[str, str], names: str) -> str:
    return ",".join(f"{n}={shards[n]}" for n in names)


def _rebalance(shards: dict[str, str], old: str, new: str) -> str:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "services.counter.rebalance",
            "--from",
            _spec(shards, old),
            "--to",
            _spec(shards, new),
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return result.stdout


def _all_counts(clients: dict[str, redis.Redis]) -> dict[str, dict[str, int]]:
    found: dict[str, dict[str, int]] = {}
    for name, client in clients.items():
        for key in client.scan_iter(match="visits:*", count=1000):
            found.setdefault(key.decode().removeprefix("visits:"), {})[name] = int(
                client.get(key) or 0
            )
    return found


def test_adding_then_removing_a_shard_keeps_every_count(three_shards: dict[str, str]) -> None:
    clients = {n: redis.Redis.from_url(u) for n, u in three_shards.items()}
    old_ring = ShardRing(["a", "b"])
    rng = random.Random(7)
    expected = {page: rng.randint(1, 10_000) for page in PAGES}
    for page, count in expected.items():
        clients[old_ring.shard_for(page)].set(f"visits:{page}", count)

    # An interrupted earlier run: one count taken into transit but never delivered, another
    # delivered but its transit record never dropped.
    new_ring = ShardRing(["a", "b", "c"])
    movers = [p for p in PAGES if new_ring.shard_for(p) == "c"]
    taken, delivered = movers[0], movers[1]
    for page, done in ((taken, False), (delivered, True)):
        source = clients[old_ring.shard_for(page)]
        source.delete(f"visits:{page}")
        source.hset(
            f"{TRANSIT_PREFIX}{page}", mapping={"amount": expected[page], "token": f"t-{page}"}
        )
        if done:
            clients["c"].incrby(f"visits:{page}", expected[page])
            clients["c"].set(f"{DONE_PREFIX}t-{page}", 1)
    # A visit that reached the new owner already (services switched before the rebalance).
    clients["c"].incrby(f"visits:{movers[2]}", 5)
    expected[movers[2]] += 5

    output = _rebalance(three_shards, "ab", "abc")
    assert "finished 2 interrupted moves" in output

    after = _all_counts(clients)
    assert {page: sum(where.values()) for page, where in after.items()} == expected
    assert all(list(where) == [new_ring.shard_for(page)] for page, where in after.items())
    assert 0.2 <= len(movers) / len(PAGES) <= 0.5
    assert not any(c.keys(f"{TRANSIT_PREFIX}*") for c in clients.values())

    # Running again changes nothing.
    assert _rebalance(three_shards, "ab", "abc").startswith(f"scanned {len(PAGES)} keys, moved 0")
    assert _all_counts(clients) == after

    # And back to two shards.
    _rebalance(three_shards, "abc", "ab")
    back = _all_counts(clients)
    assert {page: sum(where.values()) for page, where in back.items()} == expected
    assert all(list(where) == [old_ring.shard_for(page)] for page, where in back.items())
    for client in clients.values():
        client.close()


def test_bad_shard_lists_are_refused() -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "services.counter.rebalance",
            "--from",
            "nonsense",
            "--to",
            "a=redis://x:1",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode != 0
    assert "bad shard list" in result.stderr


def test_a_removed_shards_ledger_entries_move_to_a_remaining_shard(
    three_shards: dict[str, str],
) -> None:
    clients = {n: redis.Redis.from_url(u) for n, u in three_shards.items()}
    leaving = clients["c"]
    for i in range(5):
        rows = f'[["page-{i}","2024-02-29",{i + 1}]]'
        leaving.xadd(LEDGER_STREAM, {"id": f"batch{i:027d}", "rows": rows})
        leaving.incrby(LEDGER_BYTES, len(rows))
    output = _rebalance(three_shards, "abc", "ab")
    assert "moved 5 ledger entries" in output
    assert leaving.xlen(LEDGER_STREAM) == 0
    assert int(leaving.get(LEDGER_BYTES) or 0) == 0
    # redis-py's stubs type stream replies as unions of every protocol's shape.
    found: list[Any] = [entry for n in "ab" for entry in clients[n].xrange(LEDGER_STREAM) or []]
    moved = [(fields[b"id"], fields[b"rows"]) for _, fields in found]
    assert sorted(batch for batch, _ in moved) == [f"batch{i:027d}".encode() for i in range(5)]
    assert sum(int(clients[n].get(LEDGER_BYTES) or 0) for n in "ab") == sum(
        len(rows) for _, rows in moved
    )
    for client in clients.values():
        client.close()
