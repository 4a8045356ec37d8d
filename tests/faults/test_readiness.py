"""A dependency every instance shares going down leaves every instance ready (an orchestrator
keeps routing to them, so what can still be served is served), while `/status` and
`quartet_dependency_up` say what is down. Produced for real on the test cluster: a Redis shard
killed and kept down, MariaDB stopped."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial

import httpx
import pytest

from services.common.description import names
from tests.support.cluster import RunningCluster

SERVICES = names()


def _instances(cluster: RunningCluster) -> list[str]:
    return [i.name for i in cluster.topo.instances if i.service in SERVICES]


def _poll(what: str, probe: Callable[[], object], expected: object, timeout_s: float = 20) -> None:
    deadline = time.monotonic() + timeout_s
    seen: object = None
    while time.monotonic() < deadline:
        seen = probe()
        if seen == expected:
            return
        time.sleep(0.25)
    raise AssertionError(f"not within {timeout_s}s: {what} (last seen: {seen!r})")


def _dependency_state(cluster: RunningCluster, name: str, dependency: str) -> str | None:
    body = httpx.get(f"{cluster.instance_url(name)}/status", timeout=5).json()
    entry = body["dependencies"].get(dependency)
    return None if entry is None else str(entry["state"])


def _exported_up(cluster: RunningCluster, name: str, dependency: str) -> float | None:
    text = httpx.get(f"{cluster.instance_url(name)}/metrics", timeout=5).text
    prefix = f'quartet_dependency_up{{dependency="{dependency}"}} '
    line = next((x for x in text.splitlines() if x.startswith(prefix)), None)
    return None if line is None else float(line.rsplit(" ", 1)[1])


@contextmanager
def _down(cluster: RunningCluster, program: str, *, kill: bool) -> Iterator[None]:
    if kill:
        os.kill(int(cluster.ctl("pid", program).strip()), signal.SIGKILL)
    # Kept down (supervisord would restart it at once) for as long as the test looks.
    cluster.ctl("stop", program)
    try:
        yield
    finally:
        cluster.ctl("start", program)


def _reporters(cluster: RunningCluster, dependency: str) -> list[str]:
    """The instances that use the dependency: those whose /status lists it."""
    return [n for n in _instances(cluster) if _dependency_state(cluster, n, dependency) == "up"]


@contextmanager
def _observed_down(
    cluster: RunningCluster, program: str, dependency: str, *, kill: bool
) -> Iterator[list[str]]:
    reporters = _reporters(cluster, dependency)
    assert reporters, f"no instance uses {dependency}"
    with _down(cluster, program, kill=kill):
        for name in reporters:
            _poll(
                f"{name}'s /status shows {dependency} down",
                partial(_dependency_state, cluster, name, dependency),
                "down",
            )
        yield reporters
    for name in reporters:
        _poll(
            f"{name} sees {dependency} up again",
            partial(_dependency_state, cluster, name, dependency),
            "up",
            timeout_s=60,
        )


def _assert_ready_and_reporting(
    cluster: RunningCluster, reporters: list[str], dependency: str
) -> None:
    for name in _instances(cluster):
        ready = httpx.get(f"{cluster.instance_url(name)}/readyz", timeout=5)
        assert ready.status_code == 200, (name, ready.text)
        assert httpx.get(f"{cluster.instance_url(name)}/healthz", timeout=5).status_code == 200
    for name in reporters:
        status = httpx.get(f"{cluster.instance_url(name)}/status", timeout=5).json()
        assert status["status"] == "degraded"
        assert dependency in status["down"]
        # The watch loop exports it within its interval (5 s), for alerts.
        _poll(
            f"{name} exports {dependency} down",
            partial(_exported_up, cluster, name, dependency),
            0.0,
        )


@pytest.mark.parametrize("shard_index", [0, 1])
def test_one_shard_down_leaves_every_instance_ready(
    cluster: RunningCluster, shard_index: int
) -> None:
    shard = cluster.topo.shard_names[shard_index]
    dependency = f"redis:{shard}"
    with _observed_down(cluster, shard, dependency, kill=True) as reporters:
        assert len(reporters) == len(_instances(cluster))  # every service uses every shard
        _assert_ready_and_reporting(cluster, reporters, dependency)


def test_mysql_down_leaves_every_instance_ready(cluster: RunningCluster) -> None:
    with _observed_down(cluster, "mariadb", "mysql", kill=False) as reporters:
        _assert_ready_and_reporting(cluster, reporters, "mysql")
