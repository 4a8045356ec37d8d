"""Put every unclaimed gift code back in its campaign's pool, on the shard that owns it now.

    python -m services.banner.repool --to "$NEW_REDIS_SHARDS" [--from "$OLD_REDIS_SHARDS"]
                                                                 (MYSQL_DSN from the environment)

Run it after REDIS_SHARDS changed (with the counter's rebalance), or after a shard came back
empty. MySQL is the record of every code; a pool in Redis is only the list claims pop from, kept
on the shard that owns `giftcodes:<campaign>`. When a campaign's owner changes, its pool stays
behind on the old shard and the new owner has none: claims would answer 410 with codes unclaimed.

For every campaign with unclaimed codes, the codes MySQL holds unclaimed and the owner's pool
lacks are appended to that pool; then, on every shard named in either list, the pools and claim
maps of campaigns the shard no longer owns are deleted (SCAN, never KEYS). Appending before
deleting means a code is never missing from every pool; a code that ends up in a pool twice, or
is claimed while this runs, is harmless: a claim records the code in MySQL only if it is still
unclaimed there and otherwise pops the next one, and a visitor's own code is found in MySQL when
the claim map moved away. Running it again finds nothing to do.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections import defaultdict
from dataclasses import dataclass

from redis import Redis

from services.banner.giftcodes import owner_key, pool_keys, text
from services.common.mysql import connect_blocking
from services.common.ring import ShardRing
from services.common.settings import parse_shards

CHUNK = 1000


@dataclass
class Report:
    campaigns: int = 0
    codes_added: int = 0
    keys_dropped: int = 0


def unclaimed_codes(dsn: str) -> dict[int, list[str]]:
    conn = connect_blocking(dsn, timeout_s=5)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT campaign_id, code FROM gift_codes WHERE visitor IS NULL")
            found: dict[int, list[str]] = defaultdict(list)
            for campaign_id, code in cur.fetchall():
                found[int(campaign_id)].append(str(code))
            return found
    finally:
        conn.close()


def repool(old: dict[str, str], new: dict[str, str], dsn: str) -> Report:
    ring = ShardRing(new)
    clients = {name: Redis.from_url(url, socket_timeout=5) for name, url in {**old, **new}.items()}
    report = Report()
    try:
        for campaign_id, codes in unclaimed_codes(dsn).items():
            pool = pool_keys(campaign_id)[0]
            owner = clients[ring.shard_for(owner_key(campaign_id))]
            pooled = {text(code) for code in owner.lrange(pool, 0, -1)}
            missing = [code for code in codes if code not in pooled]
            for start in range(0, len(missing), CHUNK):
                owner.rpush(pool, *missing[start : start + CHUNK])
            report.campaigns += 1
            report.codes_added += len(missing)
        for name, client in clients.items():
            for key in client.scan_iter(match="giftcodes:*", count=CHUNK):
                campaign = text(key).split(":")[1]
                if campaign.isdigit() and ring.shard_for(owner_key(int(campaign))) != name:
                    report.keys_dropped += client.delete(key)
    finally:
        for client in clients.values():
            client.close()
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--to", dest="new", required=True, help="the current REDIS_SHARDS")
    parser.add_argument("--from", dest="old", default="", help="the previous REDIS_SHARDS")
    parser.add_argument("--dsn", default=os.environ.get("MYSQL_DSN"), help="default: $MYSQL_DSN")
    args = parser.parse_args()
    if not args.dsn:
        sys.exit("MYSQL_DSN is not set")
    try:
        old, new = parse_shards(args.old), parse_shards(args.new)
    except ValueError as exc:
        sys.exit(str(exc))
    if not new:
        sys.exit("--to names no shard")
    report = repool(old, new, args.dsn)
    print(
        f"{report.campaigns} campaigns with unclaimed codes: {report.codes_added} codes pooled"
        f" again, {report.keys_dropped} keys left on shards that no longer own them deleted"
    )


if __name__ == "__main__":
    main()
