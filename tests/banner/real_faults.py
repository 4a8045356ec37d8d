"""Real faults of the test cluster's processes: SIGKILL (kept down), SIGSTOP (always resumed)."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.support import faults
from tests.support.cluster import RunningCluster
from tests.support.faults import MYSQL
from tests.support.faults import program_pid as pid_of

__all__ = ["MYSQL", "gunicorn_pids", "killed", "pid_of", "sigkill", "stalled"]


@contextmanager
def stalled(cluster: RunningCluster, program: str) -> Iterator[None]:
    """The process frozen (SIGSTOP): its sockets accept, nothing answers."""
    with faults.stalled(pid_of(cluster, program)):
        yield


@contextmanager
def killed(cluster: RunningCluster, program: str) -> Iterator[None]:
    """The process SIGKILLed and kept down (supervisord would restart it at once), then started."""
    os.kill(pid_of(cluster, program), signal.SIGKILL)
    cluster.ctl("stop", program)
    try:
        yield
    finally:
        cluster.ctl("start", program)
        if program == MYSQL:
            faults.wait_for_mysql(cluster.mysql_dsn)


def gunicorn_pids(cluster: RunningCluster, name: str) -> list[int]:
    """A banner instance's gunicorn master, then its workers: killed in this order, no worker
    is replaced by a new one the dead master would leave behind."""
    master = pid_of(cluster, f"banner:{name}")
    children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    return [master, *map(int, children)]


def sigkill(pids: list[int]) -> None:
    """No request the processes hold is finished; supervisord starts the instance again."""
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
