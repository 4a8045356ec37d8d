"""The profile: py-spy on the busiest gunicorn worker of an endpoint's service while wrk loads
the endpoint, read by bench/profile_summary.py."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cpu_accounting import process_ticks
from endpoints import Endpoint
from probes import Context, NotFit
from profile_summary import summarize_collapsed
from progress import log
from wrk_output import parse_wrk
from wrk_runner import Load, wrk_command

from cluster.topology import Topology


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
    before = {pid: process_ticks(pid) for pid in pids}
    time.sleep(window_s)
    return max(pids, key=lambda pid: process_ticks(pid) - before[pid])


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
    summary = summarize_collapsed(out.read_text())
    load_result = parse_wrk(stdout)
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
