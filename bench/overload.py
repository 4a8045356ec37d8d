"""`make overload`: one endpoint at twice what the cluster can serve, and what became of the load.

    .venv/bin/python bench/overload.py [--endpoint "recommend cached"] [--factor 2] ...

1. **Capacity**: wrk closed-loop (`-c64`, as `make bench`) for --capacity-seconds; the capacity is
   its goodput (answers < 400 a second).
2. **Overload**: --connections (512) paced connections (bench/wrk.lua's `delay=`, calibrated in
   two short trials as the half-rate runs are) sending --factor x the capacity, for --seconds.
   An open loop would be the textbook load; wrk is closed-loop, so with many connections the
   offered rate holds only while answers stay fast. The rate reached is reported as measured,
   and a run that fell short of the goal says so.
3. **What became of it**, from the gateway's access lines of this run's requests (marked by a
   User-Agent; bench/gateway_log.py): admitted (< 400) with p50/p99, goodput (admitted and
   answered within --good-ms, 100 ms, a second), refused (429/503 with Retry-After) with their
   p99, errors (anything else, and wrk's socket errors and time-outs).

The issue's bar (docs/reliability.md, "Admission control"): admitted p99 < 100 ms, refusals
within 10 ms, no errors. Writes bench/results/overload-<timestamp>.json, prints the report;
exits 1 when the run had errors or the capacity run served nothing, 2 when the
cluster cannot be measured (not running, or started with `make run`: its log is the terminal).
Against the local cluster started with `make up`, through the gateway's internal listener (the
public one would measure its per-client rate limit instead).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pacing
from endpoints import ENDPOINTS, endpoint_named
from gateway_log import Answer, LogTail, Outcomes, answers, percentile
from machine import machine
from probes import NotFit, prepare
from progress import log, step
from wrk_runner import Load, run_wrk

from cluster.topology import ClusterSettings, Topology

RESULTS = Path(__file__).resolve().parent / "results"
# The bounds: what is admitted answers within this; a refusal within REFUSAL_BOUND_MS.
ADMITTED_P99_BOUND_MS = 100.0
REFUSAL_P99_BOUND_MS = 10.0


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    topo = Topology(ClusterSettings())
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--url", default=f"http://127.0.0.1:{topo.internal_port}", help="the listener")
    p.add_argument(
        "--endpoint",
        default="recommend cached",
        help=f"one of bench/endpoints.py's: {[e.name for e in ENDPOINTS]}",
    )
    p.add_argument("--factor", type=float, default=2.0, help="offered load / capacity (2)")
    p.add_argument("--threads", type=int, default=2, help="wrk threads (2)")
    p.add_argument("--connections", type=int, default=512, help="paced connections (512)")
    p.add_argument("--capacity-seconds", type=float, default=10, help="the capacity run (10)")
    p.add_argument("--seconds", type=float, default=20, help="the overload run (20)")
    p.add_argument("--calibration", type=float, default=3, help="each pacing trial (3)")
    p.add_argument("--good-ms", type=float, default=ADMITTED_P99_BOUND_MS, help="goodput's bound")
    p.add_argument(
        "--gateway-log",
        type=Path,
        default=topo.state / "logs" / "nginx.log",
        help="the gateway's access log (default: the local cluster's)",
    )
    p.add_argument("--out", type=Path, default=RESULTS)
    return p.parse_args(argv)


def collect(tail: LogTail, user_agent: str, expected: int, timeout_s: float = 10.0) -> Outcomes:
    """The run's answers from the log; nginx flushes its buffer within a second, so lines are read
    until as many as wrk completed have arrived, or none arrived for two seconds."""
    found: list[Answer] = []
    deadline = time.monotonic() + timeout_s
    last_growth = time.monotonic()
    while time.monotonic() < deadline:
        more = list(answers(tail.read(), user_agent))
        if more:
            found += more
            last_growth = time.monotonic()
        if len(found) >= expected or time.monotonic() - last_growth > 2.0:
            break
        time.sleep(0.2)
    return Outcomes.of(found)


def rounded(value: float | None, digits: int = 1) -> float | None:
    return None if value is None else round(value, digits)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        endpoint = endpoint_named(args.endpoint)
    except KeyError as exc:
        log(str(exc))
        return 2
    if not args.gateway_log.is_file():
        log(
            f"no gateway log at {args.gateway_log}: start the cluster with `make up` (under "
            "`make run` the log is the terminal), or pass --gateway-log"
        )
        return 2
    try:
        ctx = prepare(args.url.rstrip("/"))
    except NotFit as exc:
        log(str(exc))
        return 2
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    host = machine()
    closed = Load(args.threads, 64)
    paced = Load(args.threads, args.connections)
    log(f"{endpoint.name} at {args.factor:g}x its capacity, against {ctx.base}")
    with step("warm-up"):
        run_wrk(ctx, endpoint, closed, 2)
    with step("capacity"):
        capacity_run = run_wrk(ctx, endpoint, closed, args.capacity_seconds)
    capacity = capacity_run.goodput_rps
    if capacity <= 0:
        log("no answer < 400 in the capacity run: nothing to overload")
        return 1
    goal = args.factor * capacity
    delay = pacing.pacing_delay_ms(paced.connections, goal, capacity_run.latency_ms["p50"])
    with step(f"calibrating {paced.connections} connections to {goal:.0f} req/s"):
        for _ in range(2):
            trial = run_wrk(ctx, endpoint, paced, args.calibration, delay)
            delay = pacing.recalibrate_delay_ms(paced.connections, goal, delay, trial.rps)
    user_agent = f"quartet-overload/{uuid.uuid4().hex[:12]}"
    tail = LogTail(args.gateway_log)
    try:
        with step(f"overload, {args.seconds:g}s"):
            run = run_wrk(
                ctx, endpoint, paced, args.seconds, delay, headers=(f"User-Agent: {user_agent}",)
            )
        with step("reading the gateway's lines"):
            outcomes = collect(tail, user_agent, run.requests)
    finally:
        tail.close()

    seconds = run.duration_s
    offered = run.requests / seconds if seconds > 0 else 0.0
    socket_errors = run.socket_errors
    errors = sum(outcomes.errors.values()) + socket_errors
    admitted_p99 = percentile(outcomes.admitted_ms, 99)
    refused_p99 = percentile(outcomes.refused_ms, 99)
    checks = {
        "offered_reached_goal": offered >= 0.9 * goal,
        "refusals_happened": bool(outcomes.refused_ms),
        "admitted_p99_within_bound": admitted_p99 is not None
        and admitted_p99 < ADMITTED_P99_BOUND_MS,
        "refusals_p99_within_bound": refused_p99 is None or refused_p99 < REFUSAL_P99_BOUND_MS,
        "no_errors": errors == 0,
    }
    report: dict[str, Any] = {
        "started": stamp,
        "machine": host,
        "endpoint": endpoint.name,
        "path": endpoint.path,
        "capacity": {
            "rps": round(capacity, 1),
            "connections": closed.connections,
            "seconds": round(capacity_run.duration_s, 2),
            "p50_ms": round(capacity_run.latency_ms["p50"], 2),
            "p99_ms": round(capacity_run.latency_ms["p99"], 2),
            "refused_or_failed": capacity_run.non_2xx,
        },
        "overload": {
            "factor_goal": args.factor,
            "goal_rps": round(goal, 1),
            "connections": paced.connections,
            "delay_ms": round(delay, 2),
            "seconds": round(seconds, 2),
            "offered_rps": round(offered, 1),
            "offered_factor": round(offered / capacity, 2),
            "answers_in_log": outcomes.total,
            "wrk_requests": run.requests,
            "admitted": len(outcomes.admitted_ms),
            "admitted_p50_ms": rounded(percentile(outcomes.admitted_ms, 50)),
            "admitted_p99_ms": rounded(admitted_p99),
            "goodput_rps": round(outcomes.good(args.good_ms) / seconds, 1) if seconds else 0.0,
            "good_ms": args.good_ms,
            "refused": len(outcomes.refused_ms),
            "refused_share": round(len(outcomes.refused_ms) / max(1, outcomes.total), 3),
            "refused_p50_ms": rounded(percentile(outcomes.refused_ms, 50)),
            "refused_p99_ms": rounded(refused_p99),
            "errors_by_status": {str(k): v for k, v in sorted(outcomes.errors.items())},
            "abandoned": outcomes.abandoned,
            "socket_errors": {k: v for k, v in run.errors.items() if k != "status" and v},
            "errors": errors,
        },
        "checks": checks,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"overload-{stamp}.json"
    path.write_text(json.dumps(report, indent=2) + "\n")
    o = report["overload"]
    print(
        f"{endpoint.name}: capacity {capacity:,.0f} req/s (wrk -c{closed.connections}, p99 "
        f"{capacity_run.latency_ms['p99']:.1f} ms)\n"
        f"offered {offered:,.0f} req/s ({o['offered_factor']:.2f}x; goal {args.factor:g}x) over "
        f"{paced.connections} connections for {seconds:.0f} s\n"
        f"  admitted {o['admitted']:,}: p50 {o['admitted_p50_ms']} ms, p99 {o['admitted_p99_ms']} "
        f"ms; goodput (within {args.good_ms:g} ms) {o['goodput_rps']:,.0f} req/s\n"
        f"  refused  {o['refused']:,} ({100 * o['refused_share']:.1f} %): p50 "
        f"{o['refused_p50_ms']} ms, p99 {o['refused_p99_ms']} ms\n"
        f"  errors   {errors} {o['errors_by_status'] or ''} {o['socket_errors'] or ''}\n"
        f"  abandoned by the client (499: in flight when wrk stopped, or timed out by it) "
        f"{o['abandoned']}\n"
        + "\n".join(f"  {'yes' if ok else 'NO '}  {name}" for name, ok in checks.items())
        + f"\n{path}"
    )
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
