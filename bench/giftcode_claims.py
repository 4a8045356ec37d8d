"""Gift-code claims per second and their latency: the claim of a git revision (default: the one
before the candidate-list claim) beside the working tree's, beside the banner app's trivial
endpoint (/ping), in interleaved rounds of wrk, in one run. Against the running local cluster
(`make up`, or QUARTET_STATE_DIR / QUARTET_PORT_OFFSET naming another, as for `make bench`).

    .venv/bin/python bench/giftcode_claims.py [--rounds 3] [--duration 8] [--connections 64]

It starts two banner servers of its own with the instances' settings (environment, worker
count, the cluster's Redis shards and MariaDB) on free ports, one of them with the old
`GiftCodes` swapped in behind the current interface (bench/giftcode_app.py), and sends wrk to
each directly (no nginx: the instance, as /ping on it). A claim is answered only for a visitor
the banner service served the campaign (its signed cookie records it): before each wrk run the
bench signs, with the cluster's BANNER_COOKIE_SECRET, one cookie per possible claim (a new
visitor id, the campaign recorded, issued now), one file per wrk thread, which
bench/giftcode_claims.lua sends once each, so every claim is a fresh, served visitor. Each server
claims on a campaign of its own, minted (on the server itself, an admin route) before each round
with more codes than the round can claim, so every answer is a 200 (a round with another status,
or that ran out of cookies, is reported as failed). Prints the table and writes
bench/results/giftcodes-<timestamp>.json.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from wrk_output import WrkResult, bench_json, parse_wrk

from cluster.service_env import service_env
from cluster.topology import ClusterSettings, Topology
from services.banner.visitors import COOKIE, Visitor, VisitorCookies

ROOT = Path(__file__).resolve().parent.parent
LUA = ROOT / "bench" / "wrk.lua"
CLAIM_LUA = ROOT / "bench" / "giftcode_claims.lua"
WRK_THREADS = 2
# The last commit whose claim was the SKIP LOCKED transaction alone (5 MySQL round trips).
OLD_REV = "80dfb95"
CAMPAIGNS = {"new": 1024, "old": 1023}


def log(message: str) -> None:
    print(f"[giftcodes] {message}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def post(url: str, body: dict[str, Any], token: str, timeout_s: float = 60) -> dict[str, Any]:
    request = urllib.request.Request(  # noqa: S310
        url,
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=timeout_s) as response:  # noqa: S310
        result: dict[str, Any] = json.loads(response.read())
        return result


def wait_ready(base: str, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with (
            contextlib.suppress(OSError),
            urllib.request.urlopen(f"{base}/readyz", timeout=2) as r,  # noqa: S310
        ):
            if r.status == 200:
                return
        time.sleep(0.3)
    raise SystemExit(f"{base} not ready after {timeout_s}s")


def write_cookies(secret: str, campaign_id: int, per_thread: int, prefix: Path) -> None:
    """`per_thread` visitor cookies for each wrk thread, in <prefix>-<thread>.txt: each a new
    visitor, served the campaign (any banner: the claim checks only the campaign), issued now."""
    cookies = VisitorCookies(secret)
    for thread in range(WRK_THREADS):
        lines = (
            f"{COOKIE}={cookies.dump(Visitor(secrets.token_hex(16), {str(campaign_id): 1}))}\n"
            for _ in range(per_thread)
        )
        Path(f"{prefix}-{thread}.txt").write_text("".join(lines))


@contextlib.contextmanager
def servers(topo: Topology, rev: str) -> Iterator[tuple[dict[str, str], str]]:
    """The two banner servers, new and old (name -> base URL), and their cookie secret."""
    instance = topo.instances_of("banner")[0]
    gunicorn = str(Path(sys.executable).parent / "gunicorn")
    started: list[subprocess.Popen[bytes]] = []
    bases: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="giftcode-bench-") as tmp:
        try:
            for name in ("new", "old"):
                port = free_port()
                env = service_env(topo, instance, topo.private_mysql_dsn())
                env["PROMETHEUS_MULTIPROC_DIR"] = str(Path(tmp) / name)
                if name == "old":
                    env["BENCH_GIFTCODES_REV"] = rev
                command = [
                    gunicorn,
                    "-c",
                    "python:services.common.gunicorn_conf",
                    "--pythonpath",
                    str(ROOT / "bench"),
                    "--bind",
                    f"127.0.0.1:{port}",
                    "giftcode_app:app",
                ]
                out = (Path(tmp) / f"{name}.log").open("wb")
                started.append(subprocess.Popen(command, env=env, cwd=ROOT, stdout=out, stderr=out))
                bases[name] = f"http://127.0.0.1:{port}"
            for name, base in bases.items():
                wait_ready(base)
                log(f"{name} claim served at {base} ({env['WEB_CONCURRENCY']} workers)")
            yield bases, env["BANNER_COOKIE_SECRET"]
        finally:
            for process in started:
                process.terminate()
            for process in started:
                process.wait(timeout=60)


def wrk(
    url: str, connections: int, seconds: float, cookies: Path | None = None
) -> tuple[WrkResult, int]:
    """GET `url`, or, with `cookies` (a write_cookies prefix), claim it once per cookie: the
    result and how many claims had to reuse a cookie (none, if there were enough)."""
    command = [
        "wrk",
        f"-t{WRK_THREADS}",
        f"-c{connections}",
        f"-d{max(1, round(seconds))}s",
        "--timeout=6s",
        "-s",
        str(LUA if cookies is None else CLAIM_LUA),
        url,
    ]
    if cookies is not None:
        command += ["--", f"cookies={cookies}"]
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    return parse_wrk(output), int(bench_json(output).get("reused", 0))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=8, help="seconds per wrk run")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--codes", type=int, default=20_000, help="minted per round and server")
    parser.add_argument("--old-rev", default=OLD_REV, help=f"the old claim's revision ({OLD_REV})")
    args = parser.parse_args()
    topo = Topology(ClusterSettings())
    token = topo.admin_token()
    runs: list[dict[str, Any]] = []
    with (
        servers(topo, args.old_rev) as (bases, secret),
        tempfile.TemporaryDirectory(prefix="giftcode-cookies-") as cookie_dir,
    ):
        targets = {
            "ping": f"{bases['new']}/ping",
            **{
                name: f"{bases[name]}/api/campaigns/{CAMPAIGNS[name]}/gift-code"
                for name in ("new", "old")
            },
        }

        def cookies_for(name: str, per_thread: int) -> Path:
            # Each thread alone could claim every code minted: the codes run out (410) first.
            prefix = Path(cookie_dir) / name
            write_cookies(secret, CAMPAIGNS[name], per_thread, prefix)
            return prefix

        for name in ("new", "old"):  # warm-up: pools filled, the script loaded
            post(f"{bases[name]}/api/campaigns/{CAMPAIGNS[name]}/gift-codes", {"count": 500}, token)
            wrk(targets[name], args.connections, 2, cookies_for(name, 500))
        wrk(targets["ping"], args.connections, 2)
        order = ["ping", "new", "old"]
        for round_ in range(args.rounds):
            for name in order:
                cookies = None
                if name != "ping":
                    url = f"{bases[name]}/api/campaigns/{CAMPAIGNS[name]}/gift-codes"
                    minted = post(url, {"count": args.codes}, token)
                    log(f"round {round_ + 1}: {name}: {minted['available']} codes unclaimed")
                    cookies = cookies_for(name, args.codes)
                    time.sleep(1)  # the mint's commit and push settle before the load
                result, reused = wrk(targets[name], args.connections, args.duration, cookies)
                runs.append(
                    {"round": round_ + 1, "name": name, **result.to_json(), "reused": reused}
                )
                failures = [*result.failures, *([f"{reused} reused cookies"] if reused else [])]
                failed = "; ".join(failures) or "ok"
                log(
                    f"round {round_ + 1}: {name}: {result.rps:.0f}/s, p50"
                    f" {result.latency_ms['p50']:.1f} ms, p99 {result.latency_ms['p99']:.1f} ms,"
                    f" {failed}"
                )
            order = [order[0], *reversed(order[1:])]  # new before old, then old before new

    def median(name: str, field: str) -> float:
        picked = [r for r in runs if r["name"] == name]
        values = [r["rps"] if field == "rps" else r["latency_ms"][field] for r in picked]
        return float(statistics.median(values))

    ping = median("ping", "rps")
    summary = {
        name: {
            "rps": round(median(name, "rps"), 1),
            "p50_ms": round(median(name, "p50"), 1),
            "p99_ms": round(median(name, "p99"), 1),
            "ratio_to_ping": round(median(name, "rps") / ping, 3),
        }
        for name in ("ping", "new", "old")
    }
    print(f"{'':8} {'r/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'/ping':>7}")
    for name, row in summary.items():
        print(
            f"{name:8} {row['rps']:8.0f} {row['p50_ms']:8.1f} {row['p99_ms']:8.1f}"
            f" {row['ratio_to_ping']:7.3f}"
        )
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    out = ROOT / "bench" / "results" / f"giftcodes-{stamp}.json"
    out.parent.mkdir(exist_ok=True)
    report = {
        "settings": vars(args),
        "machine": {"cpus": os.cpu_count(), "load": os.getloadavg()},
        "summary": summary,
        "runs": runs,
    }
    out.write_text(json.dumps(report, indent=2) + "\n")
    log(f"wrote {out.relative_to(ROOT)}")
    if any(r["errors"].get("status") or r["requests"] == 0 or r["reused"] for r in runs):
        sys.exit(1)


if __name__ == "__main__":
    main()
