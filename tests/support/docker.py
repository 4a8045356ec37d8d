"""Docker for the tests: the engine (it must answer; a test never skips for want of one), the
images (built or reused once per session by the code `make image` runs), and containers and
networks that are labelled with the session's pid and removed by whoever made them, or, if that
session died, by the next one.

    require_engine()              fails the test loudly when no engine answers
    service_image()               the service image's content-hash tag (quartet:src-...)
    gateway_image()               the compose gateway image, or its nginx-light stand-in
    container(image, *args, ...)  `docker run -d`, yields the id, removes it (a context manager)
    network(prefix)               a user-defined bridge network, yields its name, removes it
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import subprocess
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import httpx
import pytest

from cluster.image import bases, build, engine
from tests.support.datasets import REPO

LABEL = "quartet-test"
_MINE = f"{LABEL}={os.getpid()}"
# compose's hardening of every service (read_only, tmpfs /tmp, cap_drop ALL, no-new-privileges).
# The paths are the container's own tmpfs, not the host's /tmp.
HARDENED = ["--read-only", "--tmpfs", "/tmp", "--cap-drop", "ALL"]  # noqa: S108
HARDENED += ["--security-opt", "no-new-privileges:true"]
METRICS_DIR = "/tmp/metrics"  # noqa: S108  (the image's PROMETHEUS_MULTIPROC_DIR)


def docker(
    *args: str, timeout_s: float = 120, check: bool = True
) -> subprocess.CompletedProcess[str]:
    return engine.docker(*args, timeout_s=timeout_s, check=check)


@functools.cache
def require_engine() -> str:
    """The engine's version. Fails (never skips) without one: `make test` runs `make install`
    first, which installs docker.io and starts dockerd as root. Removes what dead sessions left."""
    try:
        version = engine.require_engine()
    except engine.EngineUnavailable as exc:
        pytest.fail(f"the container tests need a Docker engine: {exc}", pytrace=False)
    _remove_stale()
    return version


def _alive(pid: str) -> bool:
    try:
        os.kill(int(pid), 0)
    except (ValueError, ProcessLookupError):
        return False
    except PermissionError:
        return True
    return True


def _remove_stale() -> None:
    listed = docker("ps", "-a", "--filter", f"label={LABEL}", "--format", "{{.ID}} {{.Labels}}")
    for line in listed.stdout.splitlines():
        container_id, _, labels = line.partition(" ")
        owner = dict(part.partition("=")[::2] for part in labels.split(",")).get(LABEL, "")
        if not _alive(owner):
            docker("rm", "--force", "--volumes", container_id, check=False)
    networks = docker("network", "ls", "--filter", f"label={LABEL}", "--format", "{{.Name}}")
    for name in networks.stdout.split():
        owner = inspect("network", name)["Labels"].get(LABEL, "")
        if not _alive(owner):
            docker("network", "rm", name, check=False)


@functools.cache
def build_report() -> build.Report:
    require_engine()
    return build.build_images()


def service_image() -> str:
    """The service image by its content-hash tag: the image this source tree builds."""
    return build_report().service.tags[1]


@functools.cache
def gateway_image() -> str:
    require_engine()
    return bases.gateway()


def inspect(kind: str, name: str) -> dict[str, Any]:
    found: list[dict[str, Any]] = json.loads(docker(kind, "inspect", name).stdout)
    return found[0]


def run_once(
    image: str, *command: str, options: Sequence[str] = (), timeout_s: float = 60
) -> subprocess.CompletedProcess[str]:
    """`docker run --rm [options] image [command]` to completion; the caller checks the exit
    code."""
    args = ["run", "--rm", "--label", _MINE, *options, image, *command]
    return docker(*args, timeout_s=timeout_s, check=False)


@contextmanager
def container(
    image: str,
    *command: str,
    options: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    network_name: str | None = None,
    aliases: Sequence[str] = (),
) -> Iterator[str]:
    """A detached container (its id); on exit its logs are printed (pytest shows them for a
    failed test) and it is removed."""
    args = ["run", "--detach", "--label", _MINE, *options]
    for key, value in (env or {}).items():
        args += ["--env", f"{key}={value}"]
    if network_name:
        args += ["--network", network_name]
        for alias in aliases:
            args += ["--network-alias", alias]
    container_id = docker(*args, image, *command).stdout.strip()
    try:
        yield container_id
    finally:
        logs = docker("logs", "--tail", "40", container_id, check=False)
        print(f"--- {container_id[:12]} ({image}) ---\n{logs.stdout}{logs.stderr}")
        docker("rm", "--force", container_id, check=False, timeout_s=60)


@contextmanager
def network(prefix: str = "quartet-test") -> Iterator[str]:
    """A user-defined bridge network: Docker's DNS answers container names and aliases on it."""
    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    docker("network", "create", "--driver", "bridge", "--label", _MINE, name)
    try:
        yield name
    finally:
        docker("network", "rm", name, check=False)


def network_gateway(name: str) -> str:
    """The host's address on the network: how its containers reach a server the test runs."""
    return str(inspect("network", name)["IPAM"]["Config"][0]["Gateway"])


def published_port(container_id: str, port: int) -> int:
    """The 127.0.0.1 port Docker published the container's `port` on."""
    bindings = inspect("container", container_id)["NetworkSettings"]["Ports"][f"{port}/tcp"]
    return int(next(b["HostPort"] for b in bindings if b["HostIp"] == "127.0.0.1"))


def state(container_id: str) -> dict[str, Any]:
    found: dict[str, Any] = inspect("container", container_id)["State"]
    return found


def wait_healthy(container_id: str, timeout_s: float = 60) -> None:
    """Until the image's HEALTHCHECK reports healthy; fails on unhealthy, exit or the deadline."""
    deadline = time.monotonic() + timeout_s
    while True:
        current = state(container_id)
        assert current["Running"], f"the container exited: {current}"
        health = current["Health"]["Status"]
        if health == "healthy":
            return
        assert health != "unhealthy", current["Health"]["Log"][-1:]
        assert time.monotonic() < deadline, f"not healthy after {timeout_s} s: {health}"
        time.sleep(0.3)


def wait_answering(container_id: str, url: str, timeout_s: float = 30) -> None:
    """Until `url` (a port the container published) answers 200; fails if the container exits
    or the deadline passes."""
    deadline = time.monotonic() + timeout_s
    while True:
        assert state(container_id)["Running"], f"the container exited: {url}"
        with contextlib.suppress(httpx.TransportError):
            if httpx.get(url, timeout=1).status_code == 200:
                return
        assert time.monotonic() < deadline, f"{url} did not answer within {timeout_s} s"
        time.sleep(0.2)


@contextmanager
def gateway_container(
    network_name: str,
    *,
    publish: Sequence[int],
    env: Mapping[str, str],
    options: Sequence[str] = (),
) -> Iterator[str]:
    """The gateway as compose starts it: nginx/container-start.sh as the entrypoint, the repo's
    nginx/ read-only at /etc/quartet/nginx, read-only root, uid 101; `publish` on 127.0.0.1."""
    published = [arg for port in publish for arg in ("--publish", f"127.0.0.1::{port}")]
    with container(
        gateway_image(),
        "/etc/quartet/nginx/container-start.sh",
        options=[
            *HARDENED,
            *options,
            "--user",
            "101:101",
            "--volume",
            f"{REPO / 'nginx'}:/etc/quartet/nginx:ro",
            "--entrypoint",
            "sh",
            *published,
        ],
        env=env,
        network_name=network_name,
    ) as container_id:
        yield container_id
