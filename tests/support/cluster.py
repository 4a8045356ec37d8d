"""The test cluster: the same `python -m cluster up` a user runs, on offset ports and in a
temporary state directory, so it never meets a developer's own `make run`."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import redis

from cluster.topology import ClusterSettings, Topology
from tests.support import datasets

# Ports +10000 by default; QUARTET_TEST_PORT_OFFSET lets two checkouts test side by side.
PORT_OFFSET = int(os.environ.get("QUARTET_TEST_PORT_OFFSET", "10000"))


@dataclass
class RunningCluster:
    topo: Topology
    env: dict[str, str]

    @property
    def gateway(self) -> str:
        """The public listener: per-client limits apply (100 r/s, burst 50, 10 connections)."""
        return self.topo.gateway_url

    @property
    def internal(self) -> str:
        """The gateway's internal listener: the same routes without limits, for load."""
        return f"http://127.0.0.1:{self.topo.internal_port}"

    @property
    def generated_banners(self) -> datasets.Dataset:
        """The generated banner dataset the cluster wrote at its start (and serves)."""
        return datasets.generated(self.topo.generated_banner_data)

    @property
    def admin_token(self) -> str:
        return self.topo.admin_token()

    @property
    def mysql_dsn(self) -> str:
        return self.topo.private_mysql_dsn()

    def instance_url(self, name: str) -> str:
        port = next(i.port for i in self.topo.instances if i.name == name)
        return f"http://127.0.0.1:{port}"

    def redis(self, shard: str) -> redis.Redis:
        port = dict(zip(self.topo.shard_names, self.topo.redis_ports, strict=True))[shard]
        return redis.Redis(port=port, socket_timeout=2)

    def cli(self, *args: str, check: bool = True) -> str:
        result = subprocess.run(
            [sys.executable, "-m", "cluster", *args],
            env=self.env,
            capture_output=True,
            text=True,
            check=False,
            timeout=180,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"cluster {args}: {result.stdout}{result.stderr}")
        return result.stdout

    def ctl(self, *args: str) -> str:
        """supervisorctl, e.g. ctl("stop", "counter:counter_1"); raises if it reports failure."""
        return self.cli("ctl", *args)

    def wait_ready(self, name: str, timeout_s: float = 60) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{self.instance_url(name)}/readyz", timeout=2) as r:  # noqa: S310
                    if r.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"{name} not ready after {timeout_s}s")


def listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def free_offset() -> int:
    """An offset for a second, short-lived cluster whose every port is free: clear of this
    session's test cluster and of another checkout's, and below the kernel's ephemeral ports
    (32768 on), which any connection may hold."""
    for offset in (20_000, 12_000, 22_000, 14_000, 24_000):
        topo = Topology(ClusterSettings(STATE_DIR=Path("/nonexistent"), PORT_OFFSET=offset))
        if offset != PORT_OFFSET and not any(map(listening, topo.listen_ports(private_mysql=True))):
            return offset
    raise AssertionError("no free port offset for a second cluster")


def cluster_env(state_dir: Path, port_offset: int, **settings: str) -> dict[str, str]:
    """The environment of `python -m cluster` for a private cluster: its own state directory and
    ports, a private MariaDB and a generated token whatever the caller's environment says, and
    tracing only when a test asks for it (the caller's OTEL_* variables are not passed on)."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"MYSQL_DSN", "ADMIN_TOKEN"} and not k.startswith("OTEL_")
    }
    env.update(QUARTET_STATE_DIR=str(state_dir), QUARTET_PORT_OFFSET=str(port_offset), **settings)
    return env


def start(state_dir: Path) -> RunningCluster:
    # The generated dataset always; DataChef's beside it when it is there (ids never overlap).
    topo = Topology(ClusterSettings(STATE_DIR=state_dir, PORT_OFFSET=PORT_OFFSET))
    banner_dirs = [topo.generated_banner_data]
    if datasets.datachef_present():
        banner_dirs.append(datasets.DATACHEF_DIR)
    env = cluster_env(
        state_dir,
        PORT_OFFSET,
        ENVIRONMENT="test",
        COUNTER_FLUSH_INTERVAL_S="1",
        COUNTER_CACHE_TTL_S="5",
        BANNER_DATA_DIR=os.pathsep.join(str(d) for d in banner_dirs),
        QUARTET_RECOMMENDER_USERS="300",
        # Short L2 freshness, so a test can see a stale entry answer while MySQL is down.
        RECOMMENDER_L2_TTL_S="3",
    )
    cluster = RunningCluster(topo, env)
    cluster.cli("up")
    return cluster
