"""Move page counts to their new owners after REDIS_SHARDS changed.

    python -m services.counter.rebalance --from "$OLD_REDIS_SHARDS" --to "$NEW_REDIS_SHARDS"

Run it after the services restarted with the new shard list: they already write to the new
owners, and this moves what the old owners still hold. Every shard named in either list is
scanned (SCAN, never KEYS). A count moves in three steps, each atomic on its shard:

  1. on the old owner, the key's value moves into an in-transit record with a fresh token;
  2. the new owner adds the amount, once per token (a done-marker with the token, SET NX);
  3. the old owner drops the in-transit record.

Counts are only ever added (INCRBY), never overwritten, so increments that land on either shard
while the command runs are kept. An interrupted run leaves in-transit records; the next run
finishes them first, and step 2's marker makes sure none is added twice.

A shard that leaves the list may still hold ledger entries MySQL has not taken (its stream, see
ledger.py), and no service reads it any more: each entry is copied to a remaining shard's stream,
then deleted from the old one. An entry copied twice (a run interrupted between the two steps)
carries the same batch id both times, and the ledger applies a batch id once.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import uuid
from dataclasses import dataclass, field
from typing import Any

from redis.asyncio import Redis

from services.common.ring import ShardRing
from services.common.settings import parse_shards
from services.counter.pages import KEY_PREFIX, page_of
from services.counter.store import LEDGER_BYTES, LEDGER_STREAM

TRANSIT_PREFIX = "rebalance:" + KEY_PREFIX
DONE_PREFIX = "rebalance:done:"
DONE_TTL_S = 7 * 24 * 3600

# KEYS[1] = page key, KEYS[2] = in-transit record. Returns {amount, token} of the record to
# deliver: an existing one (left by an interrupted run) first, else the key's value moved now.
_TAKE = """
if redis.call('EXISTS', KEYS[2]) == 1 then
  return redis.call('HMGET', KEYS[2], 'amount', 'token')
end
local value = redis.call('GET', KEYS[1])
if not value then
  return {false, false}
end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[2], 'amount', value, 'token', ARGV[1])
return {value, ARGV[1]}
"""
# KEYS[1] = page key, KEYS[2] = done-marker. Adds the amount once per token.
_DELIVER = """
if redis.call('SET', KEYS[2], '1', 'NX', 'EX', ARGV[2]) then
  redis.call('INCRBY', KEYS[1], ARGV[1])
  return 1
end
return 0
"""
# KEYS[1] = in-transit record. Drops it only if it is still the one delivered.
_FORGET = """
if redis.call('HGET', KEYS[1], 'token') == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""

# KEYS[1] = ledger stream, KEYS[2] = its byte count; ARGV = the entry's batch id and rows.
_ADD_ENTRY = """
redis.call('XADD', KEYS[1], '*', 'id', ARGV[1], 'rows', ARGV[2])
redis.call('INCRBY', KEYS[2], string.len(ARGV[2]))
return 1
"""
# KEYS[1] = ledger stream, KEYS[2] = its byte count; ARGV[1] = entry id, ARGV[2] = payload bytes.
_DROP_ENTRY = """
if redis.call('XDEL', KEYS[1], ARGV[1]) == 1 then
  redis.call('DECRBY', KEYS[2], ARGV[2])
end
return 1
"""


@dataclass
class Report:
    scanned: int = 0
    moved_keys: int = 0
    moved_visits: int = 0
    resumed: int = 0
    ledger_entries: int = 0
    by_route: dict[str, int] = field(default_factory=dict)


class Rebalancer:
    def __init__(self, old: dict[str, str], new: dict[str, str], *, scan_count: int = 1000) -> None:
        self.ring = ShardRing(new)
        urls = {**old, **new}
        self.clients = {name: Redis.from_url(url, socket_timeout=5) for name, url in urls.items()}
        self.scan_count = scan_count
        self._take = {n: c.register_script(_TAKE) for n, c in self.clients.items()}
        self._deliver = {n: c.register_script(_DELIVER) for n, c in self.clients.items()}
        self._forget = {n: c.register_script(_FORGET) for n, c in self.clients.items()}
        self._add_entry = {n: c.register_script(_ADD_ENTRY) for n, c in self.clients.items()}
        self._drop_entry = {n: c.register_script(_DROP_ENTRY) for n, c in self.clients.items()}
        self.leaving = [name for name in old if name not in new]
        self.report = Report()

    async def run(self) -> Report:
        for name in self.clients:
            # In-transit records first: an interrupted run's deliveries are finished before
            # anything new is taken from the same keys.
            client = self.clients[name]
            async for key in client.scan_iter(match=TRANSIT_PREFIX + "*", count=self.scan_count):
                self.report.resumed += 1
                await self._move(name, page_of(key.decode().removeprefix("rebalance:")))
            async for key in client.scan_iter(match=KEY_PREFIX + "*", count=self.scan_count):
                self.report.scanned += 1
                page = page_of(key.decode())
                if self.ring.shard_for(page) != name:
                    await self._move(name, page)
        for name in self.leaving:
            await self._move_ledger(name)
        return self.report

    async def _move_ledger(self, source: str) -> None:
        client = self.clients[source]
        # redis-py's stubs type stream replies as unions of every protocol's shape: Any here.
        while True:
            entries: Any = await client.xrange(LEDGER_STREAM, count=self.scan_count)
            if not entries:
                return
            for entry_id, fields in entries:
                batch_id, rows = fields[b"id"], fields[b"rows"]
                target = self.ring.shard_for(batch_id.decode())
                await self._add_entry[target](
                    keys=[LEDGER_STREAM, LEDGER_BYTES], args=[batch_id, rows]
                )
                await self._drop_entry[source](
                    keys=[LEDGER_STREAM, LEDGER_BYTES], args=[entry_id, len(rows)]
                )
                self.report.ledger_entries += 1

    async def _move(self, source: str, page: str) -> None:
        target = self.ring.shard_for(page)
        key, transit = KEY_PREFIX + page, TRANSIT_PREFIX + page
        while True:
            amount, token = await self._take[source](keys=[key, transit], args=[uuid.uuid4().hex])
            if amount is None:
                return
            await self._deliver[target](
                keys=[key, DONE_PREFIX + token.decode()], args=[int(amount), DONE_TTL_S]
            )
            await self._forget[source](keys=[transit], args=[token])
            self.report.moved_keys += 1
            self.report.moved_visits += int(amount)
            route = f"{source}->{target}"
            self.report.by_route[route] = self.report.by_route.get(route, 0) + 1
            if target == source:
                # An in-transit record left on what is again the owner (the list changed back)
                # was delivered to itself, which restored the key: nothing more to move.
                return

    async def close(self) -> None:
        for client in self.clients.values():
            await client.aclose()


async def _main(old: dict[str, str], new: dict[str, str]) -> Report:
    rebalancer = Rebalancer(old, new)
    try:
        return await rebalancer.run()
    finally:
        await rebalancer.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--from", dest="old", required=True, help="the previous REDIS_SHARDS")
    parser.add_argument("--to", dest="new", required=True, help="the new REDIS_SHARDS")
    args = parser.parse_args()
    try:
        old, new = parse_shards(args.old), parse_shards(args.new)
    except ValueError as exc:
        sys.exit(f"bad shard list: {exc}")
    if not new:
        sys.exit("--to names no shard")
    report = asyncio.run(_main(old, new))
    print(
        f"scanned {report.scanned} keys, moved {report.moved_keys} "
        f"({report.moved_visits} visits), finished {report.resumed} interrupted moves, "
        f"moved {report.ledger_entries} ledger entries off removed shards"
    )
    for route, count in sorted(report.by_route.items()):
        print(f"  {route}: {count} keys")


if __name__ == "__main__":
    main()
