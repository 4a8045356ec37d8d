"""`python -m cluster.chaos` (`make chaos`): faults under mixed load against the running cluster.

    python -m cluster.chaos [--duration 180] [--seed N] [--report PATH] ...

It needs the cluster `make up` started (same QUARTET_STATE_DIR / QUARTET_PORT_OFFSET, and the
same MYSQL_DSN if that pointed at an external server). It prints the faults, the answers by
endpoint and kind, and the invariants; writes the JSON report (default: .run/chaos/); and exits 1
when an invariant broke, 2 when the cluster is not running.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import math
import os
import random
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from cluster.__main__ import ctl, supervisor_pid
from cluster.chaos import invariants, report
from cluster.chaos.faults import FaultInjector
from cluster.chaos.traffic import Traffic
from cluster.topology import ClusterSettings, Topology

# The generated banner dataset's campaigns (services/banner/generate.py): always served.
CAMPAIGNS = list(range(1001, 1025))
GIFT_CAMPAIGN = 1003


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=180, help="seconds of faults (180)")
    parser.add_argument("--fault-every", type=float, default=6, help="seconds between faults")
    parser.add_argument("--stall", type=float, default=3, help="seconds a SIGSTOP lasts")
    parser.add_argument("--workers", type=int, default=2, help="clients per actor")
    parser.add_argument("--pages", type=int, default=24, help="counter pages written")
    parser.add_argument("--mint", type=int, default=5000, help="gift codes minted for the run")
    parser.add_argument("--seed", type=int, default=None, help="fault and load choices")
    parser.add_argument("--report", type=Path, default=None, help="JSON report path")
    return parser.parse_args()


def _counter_facts(topo: Topology) -> dict[str, Any]:
    counter = next(i for i in topo.instances if i.service == "counter")
    facts: dict[str, Any] = httpx.get(f"http://127.0.0.1:{counter.port}/status", timeout=5).json()[
        "facts"
    ]
    return facts


async def _run(args: argparse.Namespace, topo: Topology, seed: int) -> dict[str, Any]:
    facts = _counter_facts(topo)
    ack = str(facts.get("ack", "batch"))
    run = f"{dt.datetime.now(dt.UTC):%H%M%S}-{seed}"
    traffic = Traffic(
        base=f"http://127.0.0.1:{topo.internal_port}",
        admin_token=topo.admin_token(),
        pages=[f"chaos-{run}-{i}" for i in range(args.pages)],
        campaigns=CAMPAIGNS,
        gift_campaign=GIFT_CAMPAIGN,
        users=min(topo.settings.RECOMMENDER_USERS, 300),
        seed=seed,
    )

    def supervised(*words: str) -> str:
        return ctl(topo, *words).stdout

    injector = FaultInjector(
        topo, supervised, seed=seed, every_s=args.fault_every, stall_s=args.stall
    )
    t0 = time.monotonic()
    stop = asyncio.Event()
    load = asyncio.create_task(traffic.run(stop, workers=args.workers, mint=args.mint))
    chaos = asyncio.create_task(injector.run(stop))
    try:
        done, _ = await asyncio.wait({load}, timeout=args.duration)
        if done:
            load.result()  # the load failed to start (mint refused): say why
    finally:
        stop.set()
        await asyncio.gather(chaos, return_exceptions=True)
        injector.resume_all()
    await load
    elapsed = time.monotonic() - t0
    last_fault_end = max((f.ended or f.started for f in injector.faults), default=t0)

    found = [invariants.answers(traffic.tally)]
    found.append(
        await asyncio.to_thread(invariants.recovery, topo, injector.faults, last_fault_end)
    )
    counters = len(topo.instances_of("counter"))
    counter_kills = sum(
        1 for f in injector.faults if f.kind == "kill_instance" and f.target.startswith("counter")
    )
    acked = sum(t.acked for t in traffic.tally.pages.values())
    # Batch mode acknowledges from memory: a SIGKILLed instance loses what it buffered since its
    # last flush, about one flush interval of its share of the writes (docs/reliability.md).
    per_instance_per_s = acked / elapsed / counters
    flush_s = float(facts.get("flush_interval_s", 1.0))
    allowed = counter_kills * math.ceil(2 * per_instance_per_s * flush_s + 10)
    dsn = os.environ.get("MYSQL_DSN") or topo.private_mysql_dsn()
    found += await asyncio.to_thread(
        invariants.visits, topo, dsn, traffic.tally, ack=ack, allowed_loss=allowed
    )
    found.append(await asyncio.to_thread(invariants.gift_codes, dsn, traffic.tally, GIFT_CAMPAIGN))
    found.append(await asyncio.to_thread(invariants.events, dsn, traffic.tally, traffic.run_id))
    config = {
        "seed": seed,
        "duration_s": args.duration,
        "elapsed_s": round(elapsed, 1),
        "fault_every_s": args.fault_every,
        "stall_s": args.stall,
        "workers": args.workers,
        "ack": ack,
        "counter_instances": counters,
    }
    return report.build(config, injector.faults, t0, traffic.tally, found)


def main() -> None:
    args = _arguments()
    topo = Topology(ClusterSettings())
    if not supervisor_pid(topo):
        print(f"no cluster is running in {topo.state}: start one with `make up`", file=sys.stderr)
        sys.exit(2)
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(10**6)
    print(f"chaos: seed {seed}, {args.duration:g} s, a fault every {args.fault_every:g} s")
    outcome = asyncio.run(_run(args, topo, seed))
    path = args.report or topo.state / "chaos" / f"chaos-{dt.datetime.now():%Y%m%d-%H%M%S}.json"
    report.show(outcome)
    report.write(outcome, path)
    print(f"report: {path}")
    sys.exit(0 if outcome["held"] else 1)


if __name__ == "__main__":
    main()
