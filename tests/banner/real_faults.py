"""Real faults of the test cluster's processes: SIGKILL (kept down), SIGSTOP (always resumed)."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pymysql

from services.common.mysql import connect_blocking
from tests.support.cluster import RunningCluster

MYSQL = "mariadb"


def pid_of(cluster: RunningCluster, program: str) -> int:
    return int(cluster.ctl("pid", program).strip())


@contextmanager
def stalled(cluster: RunningCluster, program: str) -> Iterator[None]:
    """The process frozen (SIGSTOP): its sockets accept, nothing answers."""
    pid = pid_of(cluster, program)
    os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(pid, signal.SIGCONT)


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
            wait_for_mysql(cluster)


def wait_for_mysql(cluster: RunningCluster, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            connect_blocking(cluster.mysql_dsn).close()
            return
        except pymysql.err.MySQLError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


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
