from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import signal
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis

from services.common.mysql import connect_blocking
from services.common.ring import ShardRing
from tests.support.cluster import RunningCluster
from tests.support.instances import start_instance
from tests.support.processes import free_port, redis_server

PageOn = Callable[[str], str]


@pytest.fixture
def page_on(cluster: RunningCluster) -> PageOn:
    """A fresh page id owned by the named shard."""
    ring = ShardRing(cluster.topo.shard_names)

    def pick(shard: str) -> str:
        run = uuid.uuid4().hex[:8]
        return next(
            page
            for page in (f"p-{run}-{i}" for i in itertools.count())
            if ring.shard_for(page) == shard
        )

    return pick


def ledger_total(cluster: RunningCluster, page_id: str) -> int:
    conn = connect_blocking(cluster.mysql_dsn)
    try:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT COALESCE(SUM(visits), 0) FROM page_visits_daily WHERE page_id = %s",
                (page_id,),
            )
            row = cur.fetchone()
            return int(row[0]) if row else 0
    finally:
        conn.close()


class ScratchShards:
    """Redis servers of the test's own, named like shards, that a test may kill, stall and
    restart without touching the session cluster."""

    def __init__(self, root: Path, names: tuple[str, ...], stack: ExitStack) -> None:
        self.root, self.names, self._stack = root, names, stack
        self.ports = {name: free_port() for name in names}
        for name in names:
            self.start(name)
        self.ring = ShardRing(list(names))

    @property
    def spec(self) -> str:
        return ",".join(f"{n}=redis://127.0.0.1:{p}" for n, p in self.ports.items())

    def client(self, name: str) -> redis.Redis:
        return redis.Redis(port=self.ports[name], socket_timeout=2)

    def pid(self, name: str) -> int:
        return int(self.client(name).info("server")["process_id"])

    def start(self, name: str) -> None:
        """Start (again) on the same port and data directory: the AOF brings the data back."""
        self._stack.enter_context(redis_server(self.root / name, self.ports[name]))

    def kill(self, name: str) -> None:
        os.kill(self.pid(name), signal.SIGKILL)

    def page_on(self, name: str) -> str:
        run = uuid.uuid4().hex[:8]
        return next(
            page
            for page in (f"p-{run}-{i}" for i in itertools.count())
            if self.ring.shard_for(page) == name
        )

    def count(self, page: str) -> int:
        return int(self.client(self.ring.shard_for(page)).get(f"visits:{page}") or 0)


@pytest.fixture
def scratch_shards(tmp_path: Path) -> Iterator[ScratchShards]:
    with ExitStack() as stack:
        yield ScratchShards(tmp_path / "shards", ("a", "b"), stack)


@dataclass
class CounterInstance:
    """A counter instance of the test's own (gunicorn master and workers)."""

    url: str
    proc: subprocess.Popen[bytes]

    def workers(self) -> list[int]:
        pid = self.proc.pid
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]

    def kill(self) -> None:
        """SIGKILL, master first so that it cannot replace the workers."""
        workers = self.workers()
        self.proc.kill()
        for pid in workers:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(40)


StartCounter = Callable[..., CounterInstance]


@pytest.fixture
def start_counter(cluster: RunningCluster, tmp_path: Path) -> Iterator[StartCounter]:
    """start_counter(shards_spec, COUNTER_ACK="commit", ...): a private instance on the cluster's
    MySQL, stopped with SIGTERM at the end of the test unless already gone."""
    started: list[CounterInstance] = []

    def start(redis_shards: str, **env: str) -> CounterInstance:
        started_instance = start_instance(cluster, tmp_path, "counter", redis_shards, **env)
        instance = CounterInstance(started_instance.url, started_instance.proc)
        started.append(instance)
        return instance

    yield start
    for instance in started:
        instance.stop()


async def wait_until(probe: Callable[[], object], expected: object, timeout_s: float) -> object:
    """Poll probe() (blocking, run in a thread) until it returns expected or the deadline."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = await asyncio.to_thread(probe)
        if value == expected or time.monotonic() > deadline:
            return value
        await asyncio.sleep(0.25)
