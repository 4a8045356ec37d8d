"""`make bench`: every hot endpoint through the gateway's internal listener, with wrk, beside the
stack's trivial endpoint (the ceiling), in interleaved rounds; then each endpoint again at half of
its measured maximum rate for the latency there; then a py-spy profile of one worker under the
load of the endpoint furthest below its target. Against the running local cluster (`make up`).

    .venv/bin/python bench/run.py [--rounds 2] [--duration 10] [--connections 64] ...

Writes bench/results/<timestamp>.json (every run, the machine, the settings), <timestamp>.png
(the chart) and <timestamp>-profile-<endpoint>.txt (py-spy's collapsed stacks), prints the table,
and exits 1 when a run failed (an answer with status >= 400 that was not an explicit refusal, a
socket error, a composed page with a missing part, no request completed) or 2 when the cluster is
not fit to be measured. Refusals (admission control's 503 and the in-flight cap's 429, both with
Retry-After, read from the services' counters: refusals.py) are counted and shown apart; the
rates and ratios are goodput, the answers < 400 a second.

The fan-out endpoints (/api/first, /api/smart) need the aggregator's upstream to be FAST and
reliable, or they measure the simulator's 100-600 ms sleeps and injected failures instead of the
aggregator. The local cluster's simulator is configured when the cluster starts; this script
checks it (sampling it directly) and refuses to measure the fan-out against a slow or failing
one. Start the cluster for benchmarks with:

    make down; WORKSIM_MIN_MS=0 WORKSIM_MAX_MS=2 WORKSIM_P_500=0 WORKSIM_P_429=0 \\
        WORKSIM_P_INVALID=0 WORKSIM_P_HANG=0 make up

(or skip them: --skip /api/first,/api/smart).

--tracing adds, after those runs, the same rounds with tracing on at 100 % sampling (the cluster
restarted with OTEL_* set, spans exported over OTLP http/protobuf to a receiver this script runs,
then restarted as it was): each endpoint off and on, tracing_phase.py.

The parts, one job each, beside this file: endpoints.py (what is measured, the targets),
probes.py (is the cluster fit, what the paths are filled with), wrk_runner.py with wrk.lua and
wrk_report.lua (one wrk run), wrk_output.py (its answer), refusals.py (which of its >= 400
answers were refusals), cpu_accounting.py (the cores each part of the stack used), rounds.py
(ratios, targets, the table), pacing.py (the half-rate runs), profiling.py and
profile_summary.py (py-spy), machine.py, chart.py.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pacing
import rounds
import tracing_phase
import worker_memory
from chart import chart
from endpoints import CEILING, ENDPOINTS
from machine import machine
from probes import NotFit, check_fast_worksim, prepare
from profiling import profile
from progress import log, step
from refusals import refusals_of
from rounds import Row
from wrk_output import WrkResult
from wrk_runner import Load, run_wrk

from cluster.topology import ClusterSettings, Topology

RESULTS = Path(__file__).resolve().parent / "results"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    topo = Topology(ClusterSettings())
    names = [e.name for e in ENDPOINTS]
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--url", default=f"http://127.0.0.1:{topo.internal_port}", help="the listener")
    p.add_argument(
        "--worksim-url",
        default=f"http://127.0.0.1:{topo.worksim_port}/",
        help="the aggregator's upstream, sampled to check it is fast",
    )
    p.add_argument("--rounds", type=int, default=2, help="interleaved rounds (default 2)")
    p.add_argument("--duration", type=float, default=10, help="seconds per wrk run (default 10)")
    p.add_argument("--warmup", type=float, default=2, help="seconds of warm-up per endpoint")
    p.add_argument("--threads", type=int, default=2, help="wrk threads (default 2)")
    p.add_argument("--connections", type=int, default=64, help="wrk connections (default 64)")
    p.add_argument(
        "--half-rate-connections",
        type=int,
        default=128,
        help="connections of the paced runs (more, each sending less: a stall hides fewer "
        "requests; default 128)",
    )
    p.add_argument(
        "--calibration", type=float, default=3, help="seconds of each of the two pacing trials"
    )
    p.add_argument("--half-rate-duration", type=float, default=None, help="default: --duration")
    p.add_argument("--no-half-rate", action="store_true", help="skip the paced runs")
    p.add_argument("--skip", default="", help=f"endpoints to leave out, comma-separated: {names}")
    p.add_argument(
        "--profile",
        default="auto",
        help="endpoint to profile with py-spy; 'auto' (the furthest below its target) or 'none'",
    )
    p.add_argument("--profile-duration", type=float, default=10, help="seconds of sampling")
    p.add_argument(
        "--tracing",
        action="store_true",
        help="then the same rounds with tracing on at 100 %% sampling (restarts the cluster)",
    )
    p.add_argument("--out", type=Path, default=RESULTS)
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    topo = Topology(ClusterSettings())
    skipped = {s.strip() for s in args.skip.split(",") if s.strip()}
    unknown = skipped - {e.name for e in ENDPOINTS}
    if unknown:
        log(f"unknown endpoints in --skip: {sorted(unknown)}")
        return 2
    endpoints = [e for e in ENDPOINTS if e.name not in skipped]
    load = Load(args.threads, args.connections)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    args.out.mkdir(parents=True, exist_ok=True)
    host = machine()
    fanout = any(e.name in ("/api/first", "/api/smart") for e in endpoints)
    # The rows are "tracing off" only if the cluster's services were started without it.
    traced_already = tracing_phase.cluster_tracing(topo)
    if traced_already and args.tracing:
        log(
            f"the running cluster traces already (OTEL_TRACES_EXPORTER={traced_already}): "
            "start it without OTEL_* for the off rows (`make down; make up`)"
        )
        return 2
    try:
        ctx = prepare(args.url.rstrip("/"))
        if fanout:
            check_fast_worksim(args.worksim_url)
    except NotFit as exc:
        log(str(exc))
        return 2
    log(
        f"{len(endpoints)} endpoints + ceiling, {args.rounds} rounds x {args.duration:g}s, "
        f"{load.threads} threads x {load.connections} connections, against {ctx.base}; "
        f"load average {host['loadavg_before']}"
    )
    ceiling = Row(CEILING)
    rows = [Row(e) for e in endpoints]
    failures: list[str] = []

    def measure(
        row: Row,
        seconds: float,
        delay_ms: float | None = None,
        cpu: bool = True,
        label: str = "",
    ) -> WrkResult:
        endpoint = row.endpoint
        refused_before = refusals_of(topo, endpoint.service)
        result = run_wrk(
            ctx,
            endpoint,
            load if delay_ms is None else paced,
            seconds,
            delay_ms,
            cpu=row.cpu if cpu else None,
        )
        # Never more than wrk saw: a refusal of a request from outside this run is not ours.
        refused = min(result.non_2xx, refusals_of(topo, endpoint.service) - refused_before)
        result = dataclasses.replace(result, refused=refused)
        # The phase in the name ("tracing on: "): the same endpoint is measured in both.
        failures.extend(f"{label}{endpoint.name}: {f}" for f in result.failures)
        return result

    paced = Load(args.threads, args.half_rate_connections)

    def measure_rounds(ceiling: Row, rows: list[Row], label: str) -> None:
        if args.warmup > 0:
            with step(f"{label}warm-up"):
                for endpoint in (CEILING, *endpoints):
                    run_wrk(ctx, endpoint, load, args.warmup)
        for number in range(1, args.rounds + 1):
            with step(f"{label}round {number}"):
                first = measure(ceiling, args.duration, label=label)
                results = [(row, measure(row, args.duration, label=label)) for row in rows]
                last = measure(ceiling, args.duration, label=label)
                ceiling.runs += [first, last]
                for row, result in results:
                    row.runs.append(result)
                    row.ratios.append(rounds.round_ratio(result, (first, last)))
                log(
                    f"{label}round {number}: ceiling {first.goodput_rps:.0f} / "
                    f"{last.goodput_rps:.0f} req/s; "
                    + ", ".join(
                        f"{r.endpoint.name} {res.goodput_rps:.0f}"
                        + (f" ({res.refused} refused)" if res.refused else "")
                        for r, res in results
                    )
                )

    traced_ceiling = Row(CEILING)
    traced_rows = [Row(e) for e in endpoints]
    received: dict[str, int] = {}
    try:
        measure_rounds(ceiling, rows, "")
        if not args.no_half_rate:
            seconds = args.half_rate_duration or args.duration
            with step("half-rate runs"):
                for row in rows:
                    goal = row.rps / 2
                    delay = pacing.pacing_delay_ms(paced.connections, goal, row.latency("p50"))
                    # Latency falls with the rate, so one trial overshoots: two trials.
                    for _ in range(2):
                        trial = run_wrk(ctx, row.endpoint, paced, args.calibration, delay)
                        delay = pacing.recalibrate_delay_ms(
                            paced.connections, goal, delay, trial.rps
                        )
                    row.half_rate = measure(row, seconds, delay, cpu=False)
                    row.half_rate_goal_rps = goal
        profile_result: dict[str, Any] | None = None
        if args.profile != "none":
            target = (
                rounds.worst_against_target(rows)
                if args.profile == "auto"
                else next((r for r in rows if r.endpoint.name == args.profile), None)
            )
            if target is None:
                log(f"nothing to profile ({args.profile!r} is not among the measured endpoints)")
                return 2
            out = args.out / f"{stamp}-profile-{target.endpoint.service}.txt"
            with step("profile"):
                profile_result = profile(
                    ctx, topo, target.endpoint, load, args.profile_duration, out
                )
        if args.tracing:
            with tracing_phase.OtlpSink() as sink:
                try:
                    tracing_phase.restart_cluster(
                        tracing_phase.traced_env(sink.endpoint), traced=True
                    )
                    ctx = prepare(args.url.rstrip("/"))
                    if fanout:
                        check_fast_worksim(args.worksim_url)
                    measure_rounds(traced_ceiling, traced_rows, "tracing on: ")
                    received = sink.snapshot()
                finally:
                    tracing_phase.restart_cluster({}, traced=False)
            log(f"tracing on: the receiver got {received}")
            if not received.get("spans"):
                failures.append("tracing on: no span reached the OTLP receiver")
    except NotFit as exc:
        log(str(exc))
        return 2

    table = rounds.format_table(rows, ceiling)
    # Once the load has passed; this cluster's instances only.
    rss = worker_memory.rss_by_service(worker_memory.processes(), {i.port for i in topo.instances})
    report = {
        "started": stamp,
        "machine": {**host, "loadavg_after": list(os.getloadavg())},
        "settings": {
            "url": ctx.base,
            "rounds": args.rounds,
            "duration_s": args.duration,
            "threads": load.threads,
            "connections": load.connections,
            "half_rate_connections": paced.connections,
            "ceiling": CEILING.path,
            "campaign": ctx.campaign,
            "worksim_checked_fast": any(e.group == "fanout" for e in endpoints),
            "cluster_tracing": traced_already,
        },
        "targets": {
            "ratio": {row.endpoint.name: row.endpoint.target for row in rows},
            "half_rate_p99_ms": {
                row.endpoint.name: row.endpoint.half_rate_target_ms for row in rows
            },
        },
        "ceiling": ceiling.to_json(),
        "endpoints": [row.to_json() for row in rows],
        "profile": profile_result,
        "memory": worker_memory.report(rss),
        "failures": failures,
        "table": table,
    }
    tracing_table = None
    if args.tracing:
        pairs = list(zip([ceiling, *rows], [traced_ceiling, *traced_rows], strict=True))
        tracing_table = tracing_phase.format_table(pairs)
        report["tracing"] = {
            "sampler": tracing_phase.SAMPLER,
            "exporter": "otlp http/protobuf to a receiver on 127.0.0.1 (bench/tracing_phase.py)",
            "received": received,
            "ceiling": traced_ceiling.to_json(),
            "endpoints": [row.to_json() for row in traced_rows],
            "table": tracing_table,
        }
    json_path = args.out / f"{stamp}.json"
    json_path.write_text(json.dumps(report, indent=2) + "\n")
    png_path = args.out / f"{stamp}.png"
    title = (
        f"Quartet through the gateway's internal listener, {stamp}: wrk -t{load.threads} "
        f"-c{load.connections}, {args.rounds} rounds x {args.duration:g}s; {host['cores']} cores "
        f"({host['cpu']})"
    )
    chart(rows, ceiling, title, png_path)
    print(table)
    if tracing_table is not None:
        print(f"\ntracing off (above) and on at 100 % sampling, {received.get('spans', 0)} spans:")
        print(tracing_table)
    print(f"\nCPU cores used during the runs (median; the machine has {host['cores']}):")
    for row in (ceiling, *rows):
        busiest_groups = list(row.cpu_cores.items())[:6]
        print(f"  {row.endpoint.name:<20} " + ", ".join(f"{g} {c:.2f}" for g, c in busiest_groups))
    print(f"\nRSS per worker after the runs (bound {worker_memory.RSS_BOUND_MB:g} MB):")
    for service, mbs in rss.items():
        print(f"  {service:<12} " + ", ".join(f"{mb:.0f} MB" for mb in mbs))
    if profile_result is not None:
        print(
            f"\nwhere the {profile_result['service']} worker spends its CPU under "
            f"{profile_result['endpoint']} (py-spy, {profile_result['samples']} samples with "
            f"the GIL held; {profile_result['file']}):\n  self time by code area:"
        )
        for area, share in profile_result["self_by_area"][:12]:
            print(f"    {100 * share:5.1f} %  {area}")
        print("  inclusive, the project's own code:")
        for frame, share in profile_result["top_project"][:12]:
            print(f"    {100 * share:5.1f} %  {frame}")
    print(f"\n{json_path}\n{png_path}")
    if failures:
        print("\nFAILED runs:\n  " + "\n  ".join(failures))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
