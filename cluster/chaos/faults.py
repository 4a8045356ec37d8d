"""The faults, produced for real on the local cluster through supervisord and signals.

One fault at a time, every `every_s`, in rounds: each round is every kind once, shuffled by a
seeded generator, so even a short run has each kind and a run is reproducible in what it does
(not in when the kernel schedules it). A stalled process is always resumed, also when the run is
interrupted.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from functools import partial

import httpx
import psutil
import redis

from cluster.topology import Topology
from services.common import description

SERVICES = description.names()
RECOVERY_S = 60.0  # the longest a killed instance or a restarted shard may take to answer again
KINDS = ("kill_instance", "stall_shard", "stall_mysql", "restart_shard")


@dataclass
class Fault:
    kind: str
    target: str
    started: float
    ended: float | None = None
    detail: str = ""
    # Killed or restarted: seconds until it answered again (None: not within RECOVERY_S).
    back_after_s: float | None = None

    def as_json(self, t0: float) -> dict[str, object]:
        data = asdict(self)
        data["started"] = round(self.started - t0, 2)
        data["ended"] = None if self.ended is None else round(self.ended - t0, 2)
        if self.back_after_s is not None:
            data["back_after_s"] = round(self.back_after_s, 2)
        return data


@dataclass
class FaultInjector:
    topo: Topology
    ctl: Callable[..., str]
    seed: int
    every_s: float
    stall_s: float
    faults: list[Fault] = field(default_factory=list)
    _stalled: set[int] = field(default_factory=set)
    _watches: set[asyncio.Task[None]] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        self._round: list[str] = []

    def _next_kind(self) -> str:
        if not self._round:
            self._round = self.rng.sample(KINDS, len(KINDS))
        return self._round.pop()

    def _pid(self, program: str) -> int:
        return int(self.ctl("pid", program).strip())

    async def run(self, stop: asyncio.Event) -> None:
        try:
            while not stop.is_set():
                try:
                    await asyncio.wait_for(stop.wait(), timeout=self.every_s)
                    return
                except TimeoutError:
                    pass
                await self.one(self._next_kind())
        finally:
            self.resume_all()
            await asyncio.gather(*self._watches, return_exceptions=True)

    def _watch(self, fault: Fault, answers: Callable[[], bool]) -> None:
        """Time how long the target takes to answer again, in the background."""

        async def watch() -> None:
            while time.monotonic() - fault.started < RECOVERY_S:
                if await asyncio.to_thread(answers):
                    fault.back_after_s = time.monotonic() - fault.started
                    return
                await asyncio.sleep(0.2)

        task = asyncio.create_task(watch())
        self._watches.add(task)

    async def one(self, kind: str) -> None:
        shards = self.topo.shard_names
        if kind == "kill_instance":
            instance = self.rng.choice([i for i in self.topo.instances if i.service in SERVICES])
            program = f"{instance.service}:{instance.name}"
            fault = Fault(kind, instance.name, time.monotonic())
            self.faults.append(fault)
            # The gunicorn master and its workers at once, as the OOM killer or a node loss
            # would: nothing gets to flush or finish. supervisord starts it again.
            master = psutil.Process(self._pid(program))
            victims = [master, *master.children(recursive=True)]
            for proc in victims:
                with contextlib.suppress(psutil.NoSuchProcess):
                    proc.send_signal(signal.SIGKILL)
            fault.detail = f"{len(victims)} processes"
            fault.ended = time.monotonic()
            self._watch(fault, partial(_ready, instance.port, master.pid, self._pid, program))
        elif kind in ("stall_shard", "stall_mysql"):
            program = self.rng.choice(shards) if kind == "stall_shard" else "mariadb"
            fault = Fault(kind, program, time.monotonic(), detail=f"{self.stall_s:g}s")
            self.faults.append(fault)
            pid = self._pid(program)
            os.kill(pid, signal.SIGSTOP)
            self._stalled.add(pid)
            try:
                await asyncio.sleep(self.stall_s)
            finally:
                self._resume(pid)
            fault.ended = time.monotonic()
        else:
            shard = self.rng.choice(shards)
            fault = Fault(kind, shard, time.monotonic())
            self.faults.append(fault)
            # SIGTERM, then start: Redis writes its AOF and comes back with its data.
            await asyncio.to_thread(self.ctl, "restart", shard)
            fault.ended = time.monotonic()
            port = dict(zip(shards, self.topo.redis_ports, strict=True))[shard]
            self._watch(fault, partial(_pings, port))

    def _resume(self, pid: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGCONT)
        self._stalled.discard(pid)

    def resume_all(self) -> None:
        for pid in list(self._stalled):
            self._resume(pid)


def _ready(port: int, old_pid: int, pid_of: Callable[[str], int], program: str) -> bool:
    """The instance answers /readyz again, from a new master (not the dying one)."""
    try:
        if pid_of(program) in (0, old_pid):
            return False
        return httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200
    except (httpx.HTTPError, ValueError):
        return False


def _pings(port: int) -> bool:
    client = redis.Redis(port=port, socket_timeout=1)
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
    finally:
        client.close()
