"""Where the machine's CPU goes during a run: every process on it grouped by its part of the
stack (a service's workers, nginx, Redis, MariaDB, ...) from /proc, and the cores each group used
over a window."""

from __future__ import annotations

import os
import resource
from collections.abc import Mapping, Sequence
from pathlib import Path

from services.common.description import RUNNABLE, WORKSIM

TICKS_PER_S = os.sysconf("SC_CLK_TCK")


def process_group(argv: Sequence[str]) -> str:
    """Which part of the stack a process is, from its command line (/proc/<pid>/cmdline)."""
    line = " ".join(argv)
    program = Path(argv[0]).name if argv and argv[0] else ""
    if "gunicorn" in line:
        # gunicorn's argument is the service's app (Service.app: services.<name>.app:app).
        return next((s.name for s in RUNNABLE if f"services.{s.name}." in line), "gunicorn")
    # The local cluster runs the simulator under uvicorn or as a module.
    if f"services.{WORKSIM.name}" in line:
        return WORKSIM.name
    if "supervisord" in line:
        return "supervisord"
    if program.startswith("nginx") or line.startswith("nginx:"):
        return "nginx"
    if program.startswith("redis-server") or line.startswith("redis-server"):
        return "redis"
    if program.startswith(("mariadbd", "mysqld")):
        return "mariadb"
    if program.startswith(("prometheus", "mtail")) or "exporter" in program:
        return "monitoring"
    if program == "wrk":
        return "wrk"
    return "other"


def cpu_cores(
    before: Mapping[str, float], after: Mapping[str, float], seconds: float
) -> dict[str, float]:
    """CPU seconds per group over a window -> cores used on average."""
    if seconds <= 0:
        return {}
    return {
        group: (after[group] - before.get(group, 0.0)) / seconds
        for group in after
        if after[group] - before.get(group, 0.0) > 0
    }


def process_ticks(pid: int) -> int:
    """utime + stime of one process, in clock ticks (OSError once it has exited)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def cpu_seconds() -> dict[str, float]:
    """CPU seconds used so far by every process, per group; wrk, our child, counts once it has
    exited (RUSAGE_CHILDREN)."""
    totals: dict[str, float] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().decode(errors="replace").split("\0")
            ticks = process_ticks(int(entry.name))
        except OSError:
            continue
        group = process_group(argv)
        if group == "wrk":
            continue
        totals[group] = totals.get(group, 0.0) + ticks / TICKS_PER_S
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    totals["wrk"] = children.ru_utime + children.ru_stime
    return totals
