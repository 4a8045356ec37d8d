"""Faults produced for real: a process stalled with SIGSTOP (connections are still accepted by
the kernel, nothing is ever answered: what a hung dependency looks like to its clients) and
resumed with SIGCONT on exit, whatever the test did meanwhile."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from contextlib import contextmanager, suppress

import psutil

from services.common.mysql import connect_blocking


def listener_pid(port: int) -> int:
    """The pid of the process listening on 127.0.0.1:port (needs root or the same user)."""
    for conn in psutil.net_connections(kind="tcp"):
        if conn.status == psutil.CONN_LISTEN and conn.laddr.port == port and conn.pid:
            return int(conn.pid)
    raise LookupError(f"nothing listens on port {port}")


@contextmanager
def stalled(*pids: int) -> Iterator[None]:
    """SIGSTOP the processes for the block; SIGCONT them after, also when the block raised."""
    stopped: list[int] = []
    try:
        for pid in pids:
            os.kill(pid, signal.SIGSTOP)
            stopped.append(pid)
        yield
    finally:
        for pid in stopped:
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)


def mysql_answers(dsn: str) -> bool:
    """MySQL accepts a connection now (after a restart: once its crash recovery is done)."""
    try:
        connect_blocking(dsn, timeout_s=1).close()
    except Exception:  # noqa: BLE001 - any failure to connect means: not yet
        return False
    return True
