"""The memory each service's workers hold after a run: the resident set (VmRSS) of every
gunicorn worker on the machine, grouped by service, from /proc. The issue's bound is 100 MB per
worker; the masters (which serve nothing) are left out, as is everything not a service."""

from __future__ import annotations

import itertools
from collections.abc import Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from cpu_accounting import process_group

from services.common.description import RUNNABLE

RSS_BOUND_MB = 100.0
SERVICES = frozenset(s.name for s in RUNNABLE)


@dataclass(frozen=True)
class Process:
    pid: int
    ppid: int
    argv: tuple[str, ...]
    rss_kb: int


def _read(pid: int) -> Process:
    status = Path(f"/proc/{pid}/status").read_text()
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    rss = fields.get("VmRSS", "0 kB").split()[0]  # kernel threads have none
    return Process(pid, int(fields["PPid"]), tuple(argv), int(rss))


def processes() -> Iterator[Process]:
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                yield _read(int(entry.name))
            except (OSError, KeyError, ValueError):
                continue  # exited meanwhile


def bound_port(argv: Sequence[str]) -> int | None:
    """The port of gunicorn's `--bind host:port` (the local cluster names it; the image's
    command does not)."""
    for flag, value in itertools.pairwise(argv):
        if flag == "--bind" and ":" in value:
            port = value.rsplit(":", 1)[1]
            return int(port) if port.isdigit() else None
    return None


def rss_by_service(
    found: Iterable[Process], ports: Collection[int] | None = None
) -> dict[str, list[float]]:
    """Each service's workers' RSS in MB, largest first. A worker is a service's process whose
    parent is a process of the same service (its gunicorn master). `ports`: only the instances
    bound to them (the cluster measured, not another one on the same machine)."""
    found = [p for p in found if ports is None or bound_port(p.argv) in ports]
    group = {p.pid: process_group(p.argv) for p in found}
    workers: dict[str, list[float]] = {}
    for p in found:
        service = group[p.pid]
        if service in SERVICES and group.get(p.ppid) == service:
            workers.setdefault(service, []).append(round(p.rss_kb / 1024, 1))
    return {service: sorted(mb, reverse=True) for service, mb in sorted(workers.items())}


def report(by_service: dict[str, list[float]]) -> dict[str, object]:
    """For the bench's JSON: per service the workers' RSS, and whether each is within the bound."""
    return {
        "bound_mb": RSS_BOUND_MB,
        "rss_mb_per_worker": by_service,
        "within_bound": all(mb <= RSS_BOUND_MB for mbs in by_service.values() for mb in mbs),
    }
