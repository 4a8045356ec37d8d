"""Real dependency faults for the fault-matrix tests: a process stalled (SIGSTOP, its whole
process tree, resumed in a `finally`) or refused (stopped, so connections are refused), and the
clock for how long each answer took. Used by the recommender's and the aggregator's tests."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.support import faults as support_faults
from tests.support.cluster import RunningCluster


def process_tree(pid: int) -> list[int]:
    """The process and all its descendants (a gunicorn master and its workers)."""
    found = [pid]
    for task in Path(f"/proc/{pid}/task").iterdir():
        children = (task / "children").read_text().split()
        for child in children:
            found += process_tree(int(child))
    return found


def program_pid(cluster: RunningCluster, program: str) -> int:
    return int(cluster.ctl("pid", program).strip())


@asynccontextmanager
async def stalled(cluster: RunningCluster, *programs: str) -> AsyncIterator[None]:
    """The programs' whole process trees stopped (SIGSTOP) for the block, resumed after."""
    pids = [p for program in programs for p in process_tree(program_pid(cluster, program))]
    with support_faults.stalled(*pids):
        yield


@asynccontextmanager
async def refused(
    cluster: RunningCluster, *programs: str, kill: bool = False, ready: tuple[str, ...] = ()
) -> AsyncIterator[None]:
    """The programs down for the block (SIGKILL first when `kill`, then kept down by
    supervisord), started again after it; `ready` names instances to wait for afterwards."""
    try:
        for program in programs:
            if kill:
                os.kill(program_pid(cluster, program), signal.SIGKILL)
            await asyncio.to_thread(cluster.ctl, "stop", program)
        yield
    finally:
        for program in programs:
            await asyncio.to_thread(cluster.ctl, "start", program)
        for name in ready:
            await asyncio.to_thread(cluster.wait_ready, name)


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


async def wait_until(
    check: Callable[[], object | Awaitable[object]], timeout_s: float, what: str
) -> None:
    """Polls `check()` (sync or async, truthy when done) until it holds or the time is up."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = check()
        if isinstance(result, Awaitable):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout_s}s: {what}")
        await asyncio.sleep(0.1)
