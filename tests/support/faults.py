"""Faults produced for real, for every fault-matrix test.

Two kinds, as a client sees them:
- stalled: SIGSTOP (the kernel still accepts connections, nothing is ever answered: what a hung
  dependency looks like), SIGCONT on exit, whatever the test did meanwhile;
- refused (killed): the process gone, connections refused; a supervisord program is kept down
  (supervisord would restart it at once) and started again on exit.

By pid (`stalled`), or by the test cluster's supervisord program (`programs_stalled`,
`programs_refused`, whole process trees: a gunicorn master and its workers). Plus the clock for
how long an answer took and the wait for MySQL to answer again after a fault.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Iterator
from contextlib import asynccontextmanager, contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil

from services.common.mysql import connect_blocking
from tests.support.cluster import RunningCluster

# The test cluster's MySQL program (supervisord).
MYSQL = "mariadb"


def listener_pid(port: int) -> int:
    """The pid of the process listening on 127.0.0.1:port (needs root or the same user)."""
    for conn in psutil.net_connections(kind="tcp"):
        if conn.status == psutil.CONN_LISTEN and conn.laddr.port == port and conn.pid:
            return int(conn.pid)
    raise LookupError(f"nothing listens on port {port}")


def program_pid(cluster: RunningCluster, program: str) -> int:
    """The pid supervisord started for the program ("mariadb", "counter:counter_1", ...)."""
    return int(cluster.ctl("pid", program).strip())


def process_tree(pid: int) -> list[int]:
    """The process and all its descendants (a gunicorn master and its workers)."""
    found = [pid]
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            found += process_tree(int(child))
    return found


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


@asynccontextmanager
async def programs_stalled(cluster: RunningCluster, *programs: str) -> AsyncIterator[None]:
    """The programs' whole process trees stopped (SIGSTOP) for the block, resumed after."""
    pids = [p for program in programs for p in process_tree(program_pid(cluster, program))]
    with stalled(*pids):
        yield


@asynccontextmanager
async def programs_refused(
    cluster: RunningCluster, *programs: str, kill: bool = False, ready: tuple[str, ...] = ()
) -> AsyncIterator[None]:
    """The programs down for the block (SIGKILL first when `kill`: no clean shutdown; then kept
    down by supervisord), started again after it. Afterwards MySQL, if it was one of them, is
    waited for until it answers, and so are the instances `ready` names."""
    # supervisorctl blocks for a while: in a thread, so the test's own requests keep running.
    try:
        for program in programs:
            if kill:
                os.kill(program_pid(cluster, program), signal.SIGKILL)
            await asyncio.to_thread(cluster.ctl, "stop", program)
        yield
    finally:
        for program in programs:
            await asyncio.to_thread(cluster.ctl, "start", program)
        if MYSQL in programs:
            await asyncio.to_thread(wait_for_mysql, cluster.mysql_dsn)
        for name in ready:
            await asyncio.to_thread(cluster.wait_ready, name)


def mysql_answers(dsn: str) -> bool:
    """MySQL accepts a connection now (after a restart: once its crash recovery is done)."""
    try:
        connect_blocking(dsn, timeout_s=1).close()
    except Exception:  # noqa: BLE001 - any failure to connect means: not yet
        return False
    return True


def wait_for_mysql(dsn: str, timeout_s: float = 60) -> None:
    """Polls until MySQL accepts a connection; AssertionError when it has not within timeout_s."""
    deadline = time.monotonic() + timeout_s
    while not mysql_answers(dsn):
        if time.monotonic() > deadline:
            raise AssertionError(f"MySQL does not answer {timeout_s}s after the fault")
        time.sleep(0.2)


@dataclass(frozen=True)
class Timed:
    response: httpx.Response
    took_s: float

    @property
    def status(self) -> int:
        return self.response.status_code


async def timed(request: Awaitable[httpx.Response]) -> Timed:
    started = time.monotonic()
    response = await request
    return Timed(response, time.monotonic() - started)
