"""`make bench`: every hot endpoint through the gateway's internal listener, with wrk, beside the
stack's trivial endpoint (the ceiling), in interleaved rounds; then each endpoint again at half of
its measured maximum rate for the latency there; then a py-spy profile of one worker under the
load of the endpoint furthest below its target. Against the running local cluster (`make up`).

    .venv/bin/python bench/run.py [--rounds 2] [--duration 10] [--connections 64] ...

Writes bench/results/<timestamp>.json (every run, the machine, the settings), <timestamp>.png
(the chart) and <timestamp>-profile-<endpoint>.txt (py-spy's collapsed stacks), prints the table,
and exits 1 when a run failed (an answer with status >= 400, a socket error, a composed page with
a missing part, no request completed) or 2 when the cluster is not fit to be measured.

The fan-out endpoints (/api/first, /api/smart) need the aggregator's upstream to be FAST and
reliable, or they measure the simulator's 100-600 ms sleeps and injected failures instead of the
aggregator. The local cluster's simulator is configured when the cluster starts; this script
checks it (sampling it directly) and refuses to measure the fan-out against a slow or failing
one. Start the cluster for benchmarks with:

    make down; WORKSIM_MIN_MS=0 WORKSIM_MAX_MS=2 WORKSIM_P_500=0 WORKSIM_P_429=0 \\
        WORKSIM_P_INVALID=0 WORKSIM_P_HANG=0 make up

(or skip them: --skip /api/first,/api/smart).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import http.cookies
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from email.message import Message
from pathlib import Path
from typing import Any

import benchlib
from benchlib import CEILING, ENDPOINTS, Endpoint, Row, WrkResult

from cluster.topology import ClusterSettings, Topology

ROOT = Path(__file__).resolve().parent.parent
LUA = ROOT / "bench" / "wrk.lua"
FAST_WORKSIM_ENV = (
    "WORKSIM_MIN_MS=0 WORKSIM_MAX_MS=2 WORKSIM_P_500=0 WORKSIM_P_429=0 "
    "WORKSIM_P_INVALID=0 WORKSIM_P_HANG=0"
)
# The simulator counts as fast when every sampled answer is a 200 {"time": t} with t <= this.
FAST_WORKSIM_MAX_MS = 10


class NotFit(Exception):
    """The cluster cannot be measured as asked (exit 2)."""


def log(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


# --- HTTP helpers (setup only; the load is wrk's) ---------------------------------------------


def fetch(
    url: str, method: str = "GET", timeout_s: float = 5.0, headers: dict[str, str] | None = None
) -> tuple[int, bytes, Message | None]:
    request = urllib.request.Request(url, method=method, headers=headers or {})  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:  # noqa: S310
            return int(response.status), response.read(), response.headers
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(), exc.headers
    except OSError:
        return 0, b"", None


@dataclass
class Context:
    """What the endpoints' paths and headers are filled with."""

    base: str
    campaign: int
    page: str
    cookie: str

    def url(self, endpoint: Endpoint) -> str:
        return self.base + endpoint.path.format(campaign=self.campaign, page=self.page)


def prepare(base: str) -> Context:
    status, _, _ = fetch(f"{base}/_ping/counter")
    if status != 200:
        raise NotFit(
            f"{base}/_ping/counter answered {status or 'nothing'}: is `make up` running, and is "
            "this the gateway's internal listener (the only one serving /_ping)?"
        )
    campaign = next(
        (c for c in (1001, 1) if fetch(f"{base}/api/campaigns/{c}/banner")[0] == 200), None
    )
    if campaign is None:
        raise NotFit("neither campaign 1001 (generated data) nor 1 (original data) is served")
    status, _, headers = fetch(f"{base}/campaigns/{campaign}")
    jar = http.cookies.SimpleCookie()
    for value in headers.get_all("set-cookie") or [] if headers is not None else []:
        jar.load(value)
    if status != 200 or "quartet_visitor" not in jar:
        raise NotFit(f"/campaigns/{campaign} answered {status} without a visitor cookie")
    page = f"bench-{int(time.time())}"
    if fetch(f"{base}/visits/{page}", method="POST")[0] != 200:
        raise NotFit("POST /visits failed")
    ctx = Context(base, campaign, page, f"quartet_visitor={jar['quartet_visitor'].value}")
    for endpoint in (*ENDPOINTS, CEILING):
        if "cold" in endpoint.script:
            continue
        method = "POST" if "method=POST" in endpoint.script else "GET"
        headers_out = {"Cookie": ctx.cookie} if endpoint.cookie else {}
        status, _, _ = fetch(ctx.url(endpoint), method=method, headers=headers_out)
        if status != 200:
            raise NotFit(f"{endpoint.name}: {ctx.url(endpoint)} answered {status or 'nothing'}")
    return ctx


def check_fast_worksim(url: str, samples: int = 40) -> None:
    """Sample the simulator directly: every answer a quick 200 {"time": t}, t small."""
    slow: list[str] = []
    for _ in range(samples):
        started = time.perf_counter()
        status, body, _ = fetch(url, timeout_s=2.0)
        took_ms = 1000 * (time.perf_counter() - started)
        try:
            reported = json.loads(body)["time"] if status == 200 else None
        except (ValueError, KeyError, TypeError):
            reported = None
        if status != 200 or not isinstance(reported, int) or reported > FAST_WORKSIM_MAX_MS:
            slow.append(f"status {status}, time {reported}, {took_ms:.0f} ms")
            if len(slow) == 3:
                break
    if slow:
        raise NotFit(
            f"the aggregator's upstream {url} is not a fast, reliable simulator "
            f"(samples: {slow}); the fan-out benchmarks would "
            f"measure its sleeps and failures. Restart the cluster with\n"
            f"  make down; {FAST_WORKSIM_ENV} make up\n"
            f"or leave them out: --skip /api/first,/api/smart"
        )


# --- wrk ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Load:
    threads: int
    connections: int
    timeout_s: float = 5.0


def wrk_command(
    ctx: Context, endpoint: Endpoint, load: Load, seconds: float, delay_ms: float | None = None
) -> list[str]:
    options = [o for o in endpoint.script if o != "cold"]
    if "cold" in endpoint.script:
        # Ids from the clock (microseconds): never used by an earlier run, below 2^53.
        options += [f"cold={int(time.time() * 1e6)}", f"threads={load.threads}"]
    if delay_ms is not None:
        options.append(f"delay={delay_ms:.3f}")
    command = [
        "wrk",
        f"-t{load.threads}",
        f"-c{load.connections}",
        f"-d{max(1, round(seconds))}s",
        f"--timeout={load.timeout_s:g}s",
        "-s",
        str(LUA),
    ]
    if endpoint.cookie:
        command += ["-H", f"Cookie: {ctx.cookie}"]
    command.append(ctx.url(endpoint))
    return [*command, "--", *options] if options else command


TICKS_PER_S = os.sysconf("SC_CLK_TCK")


def cpu_seconds() -> dict[str, float]:
    """CPU seconds used so far by every process, per group (benchlib.process_group); wrk, our
    child, counts once it has exited (RUSAGE_CHILDREN)."""
    totals: dict[str, float] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().decode(errors="replace").split("\0")
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        group = benchlib.process_group(argv)
        if group == "wrk":
            continue
        totals[group] = totals.get(group, 0.0) + (int(fields[11]) + int(fields[12])) / TICKS_PER_S
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    totals["wrk"] = children.ru_utime + children.ru_stime
    return totals


def run_wrk(
    ctx: Context,
    endpoint: Endpoint,
    load: Load,
    seconds: float,
    delay_ms: float | None = None,
    cpu: list[Mapping[str, float]] | None = None,
) -> WrkResult:
    """One wrk run; with `cpu`, the cores each process group used during it are appended."""
    command = wrk_command(ctx, endpoint, load, seconds, delay_ms)
    before, started = cpu_seconds(), time.monotonic()
    done = subprocess.run(
        command, capture_output=True, text=True, check=False, timeout=seconds + 60
    )
    if cpu is not None:
        cpu.append(benchlib.cpu_cores(before, cpu_seconds(), time.monotonic() - started))
    if done.returncode != 0:
        raise NotFit(f"wrk failed ({done.returncode}): {done.stderr.strip() or done.stdout[-300:]}")
    return benchlib.parse_wrk(done.stdout)


# --- the profile --------------------------------------------------------------------------------


def _cpu_ticks(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


def _ppid(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("PPid:"):
            return int(line.split()[1])
    return 0


def worker_pids(topo: Topology, service: str) -> list[int]:
    """gunicorn workers of the service's instances: children of the processes bound to their
    ports (found through /proc, so nothing about supervisord is assumed)."""
    binds = {f"127.0.0.1:{i.port}" for i in topo.instances_of(service)}
    masters: set[int] = set()
    processes: list[int] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        processes.append(int(entry.name))
        args = [a.decode(errors="replace") for a in argv]
        if any("gunicorn" in a for a in args[:2]) and any(
            a in binds or a.removeprefix("--bind=") in binds for a in args
        ):
            masters.add(int(entry.name))
    workers = []
    for pid in processes:
        with contextlib.suppress(OSError):
            if _ppid(pid) in masters:
                workers.append(pid)
    return workers


def busiest(pids: Sequence[int], window_s: float = 1.0) -> int:
    before = {pid: _cpu_ticks(pid) for pid in pids}
    time.sleep(window_s)
    return max(pids, key=lambda pid: _cpu_ticks(pid) - before[pid])


def profile(
    ctx: Context, topo: Topology, endpoint: Endpoint, load: Load, seconds: float, out: Path
) -> dict[str, Any]:
    """py-spy on the busiest worker of the endpoint's service while wrk loads the endpoint."""
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(spy).exists():
        raise NotFit("py-spy is not installed (it is in requirements.lock)")
    pids = worker_pids(topo, endpoint.service)
    if not pids:
        raise NotFit(f"no gunicorn worker of {endpoint.service} found")
    command = wrk_command(ctx, endpoint, load, seconds + 3)
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as w:
        try:
            time.sleep(1.0)
            pid = busiest(pids)
            log(f"profiling {endpoint.name}: py-spy on worker {pid} for {seconds:g}s")
            spied = subprocess.run(
                [
                    *(spy, "record", "--pid", str(pid), "--duration", str(max(1, round(seconds)))),
                    *("--format", "raw", "--nolineno", "--gil", "--output", str(out)),
                ],
                capture_output=True,
                text=True,
                check=False,
                timeout=seconds + 60,
            )
        finally:
            stdout, _ = w.communicate(timeout=seconds + 60)
    if spied.returncode != 0 or not out.exists():
        raise NotFit(f"py-spy failed: {spied.stderr.strip()[-500:]}")
    summary = benchlib.summarize_collapsed(out.read_text())
    load_result = benchlib.parse_wrk(stdout)
    return {
        "endpoint": endpoint.name,
        "service": endpoint.service,
        "worker_pid": pid,
        "seconds": seconds,
        "file": out.name,
        "samples": summary.samples,
        "load_rps_while_sampled": round(load_result.rps, 1),
        "self_by_area": summary.self_by_area,
        "top_inclusive": summary.top_inclusive,
        "top_project": summary.top_project,
        "top_self": summary.top_self,
    }


# --- the machine ----------------------------------------------------------------------------------


def _first_line(command: Sequence[str]) -> str:
    try:
        done = subprocess.run(list(command), capture_output=True, text=True, check=False)
    except OSError:
        return "?"
    text = (done.stdout or done.stderr).strip()
    return text.splitlines()[0] if text else "?"


def machine() -> dict[str, Any]:
    cpu = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem_gib = 0.0
    with contextlib.suppress(OSError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_gib = round(int(line.split()[1]) / 2**20, 1)
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": mem_gib,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "wrk": _first_line(["wrk", "-v"]),
        "nginx": _first_line(["nginx", "-v"]),
        "loadavg_before": list(os.getloadavg()),
        "git": _first_line(["git", "-C", str(ROOT), "describe", "--always", "--dirty"]),
    }


# --- the chart --------------------------------------------------------------------------------


def chart(rows: Sequence[Row], ceiling: Row, title: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colours = {"hot": "#4c72b0", "uncached": "#dd8452", "fanout": "#55a868", "ceiling": "#8c8c8c"}
    names = [r.endpoint.name for r in (ceiling, *rows)]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(12, 9), constrained_layout=True)
    ys = list(range(len(names)))[::-1]
    top.barh(
        ys,
        [r.rps for r in (ceiling, *rows)],
        color=[colours[r.endpoint.group] for r in (ceiling, *rows)],
    )
    for y, row in zip(ys, (ceiling, *rows), strict=True):
        if row is ceiling:
            label = "ceiling"
        else:
            ratio = f"{row.ratio:.2f}" if row.ratio is not None else "-"
            target = f" (target {row.endpoint.target:.2f})" if row.endpoint.target else ""
            label = f"{ratio}{target}"
        tick = (row.endpoint.target or 0) * ceiling.rps
        if tick:
            top.plot([tick, tick], [y - 0.4, y + 0.4], color="black", linewidth=1.5)
        text = f"  {row.rps:,.0f} req/s, {label}"
        top.text(max(row.rps, tick), y, text, va="center", fontsize=8)
    top.axvline(ceiling.rps, color="#8c8c8c", linestyle="--", linewidth=1)
    top.set_yticks(ys, names)
    top.set_xlim(0, ceiling.rps * 1.45 if ceiling.rps else 1)
    top.set_xlabel("requests/s (median of the rounds); black tick: the target share of the ceiling")
    top.set_title(title, fontsize=10)

    width = 0.27
    xs = range(len(rows))
    bottom.bar([x - width for x in xs], [r.latency("p50") for r in rows], width, label="p50, max")
    bottom.bar(list(xs), [r.latency("p99") for r in rows], width, label="p99, max")
    bottom.bar(
        [x + width for x in xs],
        [r.half_rate.latency_ms["p99"] if r.half_rate else 0 for r in rows],
        width,
        label="p99 at 50 % of max",
    )
    bottom.axhline(
        benchlib.HALF_RATE_P99_TARGET_MS, color="red", linestyle="--", linewidth=1,
        label="25 ms target (p99 at 50 %, non-fan-out)",
    )  # fmt: skip
    bottom.set_xticks(list(xs), [r.endpoint.name for r in rows], rotation=20, ha="right")
    bottom.set_ylabel("latency, ms")
    bottom.set_yscale("log")
    bottom.legend(fontsize=8)
    fig.savefig(path, dpi=110)
    plt.close(fig)


# --- main -----------------------------------------------------------------------------------------


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
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    return p.parse_args(argv)


@contextlib.contextmanager
def step(name: str) -> Iterator[None]:
    started = time.monotonic()
    log(f"{name} ...")
    yield
    log(f"{name}: {time.monotonic() - started:.0f}s")


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
    try:
        ctx = prepare(args.url.rstrip("/"))
        if any(e.name in ("/api/first", "/api/smart") for e in endpoints):
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
        row: Row, seconds: float, delay_ms: float | None = None, cpu: bool = True
    ) -> WrkResult:
        endpoint = row.endpoint
        result = run_wrk(
            ctx,
            endpoint,
            load if delay_ms is None else paced,
            seconds,
            delay_ms,
            cpu=row.cpu if cpu else None,
        )
        failures.extend(f"{endpoint.name}: {f}" for f in result.failures)
        return result

    paced = Load(args.threads, args.half_rate_connections)
    try:
        if args.warmup > 0:
            with step("warm-up"):
                for endpoint in (CEILING, *endpoints):
                    run_wrk(ctx, endpoint, load, args.warmup)
        for number in range(1, args.rounds + 1):
            with step(f"round {number}"):
                first = measure(ceiling, args.duration)
                results = [(row, measure(row, args.duration)) for row in rows]
                last = measure(ceiling, args.duration)
                ceiling.runs += [first, last]
                for row, result in results:
                    row.runs.append(result)
                    row.ratios.append(benchlib.round_ratio(result, (first, last)))
                log(
                    f"round {number}: ceiling {first.rps:.0f} / {last.rps:.0f} req/s; "
                    + ", ".join(f"{r.endpoint.name} {res.rps:.0f}" for r, res in results)
                )
        if not args.no_half_rate:
            seconds = args.half_rate_duration or args.duration
            with step("half-rate runs"):
                for row in rows:
                    goal = row.rps / 2
                    delay = benchlib.pacing_delay_ms(paced.connections, goal, row.latency("p50"))
                    # Latency falls with the rate, so one trial overshoots: two trials.
                    for _ in range(2):
                        trial = run_wrk(ctx, row.endpoint, paced, args.calibration, delay)
                        delay = benchlib.recalibrate_delay_ms(
                            paced.connections, goal, delay, trial.rps
                        )
                    row.half_rate = measure(row, seconds, delay, cpu=False)
                    row.half_rate_goal_rps = goal
        profile_result: dict[str, Any] | None = None
        if args.profile != "none":
            target = (
                benchlib.worst_against_target(rows)
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
    except NotFit as exc:
        log(str(exc))
        return 2

    table = benchlib.format_table(rows, ceiling)
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
        },
        "targets": {
            "ratio": dict(benchlib.TARGET_RATIO),
            "half_rate_p99_ms": benchlib.HALF_RATE_P99_TARGET_MS,
        },
        "ceiling": ceiling.to_json(),
        "endpoints": [row.to_json() for row in rows],
        "profile": profile_result,
        "failures": failures,
        "table": table,
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
    print(f"\nCPU cores used during the runs (median; the machine has {host['cores']}):")
    for row in (ceiling, *rows):
        busiest_groups = list(row.cpu_cores.items())[:6]
        print(f"  {row.endpoint.name:<20} " + ", ".join(f"{g} {c:.2f}" for g, c in busiest_groups))
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
