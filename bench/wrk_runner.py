"""One wrk run of an endpoint with bench/wrk.lua: its command line, and the cores each part of
the stack used while it ran (bench/cpu_accounting.py)."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import cpu_accounting
from endpoints import Endpoint
from probes import Context, NotFit
from wrk_output import WrkResult, parse_wrk

LUA = Path(__file__).resolve().parent / "wrk.lua"


@dataclass(frozen=True)
class Load:
    threads: int
    connections: int
    timeout_s: float = 5.0


def wrk_command(
    ctx: Context,
    endpoint: Endpoint,
    load: Load,
    seconds: float,
    delay_ms: float | None = None,
    headers: Sequence[str] = (),
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
    for header in headers:
        command += ["-H", header]
    command.append(ctx.url(endpoint))
    return [*command, "--", *options] if options else command


def run_wrk(
    ctx: Context,
    endpoint: Endpoint,
    load: Load,
    seconds: float,
    delay_ms: float | None = None,
    cpu: list[Mapping[str, float]] | None = None,
    headers: Sequence[str] = (),
) -> WrkResult:
    """One wrk run; with `cpu`, the cores each process group used during it are appended."""
    command = wrk_command(ctx, endpoint, load, seconds, delay_ms, headers)
    before, started = cpu_accounting.cpu_seconds(), time.monotonic()
    done = subprocess.run(
        command, capture_output=True, text=True, check=False, timeout=seconds + 60
    )
    if cpu is not None:
        cpu.append(
            cpu_accounting.cpu_cores(
                before, cpu_accounting.cpu_seconds(), time.monotonic() - started
            )
        )
    if done.returncode != 0:
        raise NotFit(f"wrk failed ({done.returncode}): {done.stderr.strip() or done.stdout[-300:]}")
    return parse_wrk(done.stdout)
