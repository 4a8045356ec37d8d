"""Replicas behind one service name join and leave the container gateway's upstream while it runs
(`docker compose up --scale counter=3`), with no request failing on the way: real containers on a
user-defined network, the gateway from nginx/container-start.sh, as compose runs it."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator

import httpx
import pytest

from tests.support import docker
from tests.support.datasets import REPO

# How soon a change must be served: the script re-resolves every 2 s (UPSTREAM_REFRESH_S), then
# reloads nginx; the rest is margin for a shared, noisy machine.
JOIN_WITHIN_S = 10.0
MAX_REQUESTS = 20_000  # every loop below is bounded in count as well as in time

# A backend that answers every request with its hostname (Docker sets it to the container id),
# so the test sees which replica served. HTTP/1.1 with a length: nginx keeps connections to it.
BACKEND = """
import http.server, socket
name = socket.gethostname().encode()
class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        self.send_response(200)
        self.send_header("content-length", str(len(name)))
        self.end_headers()
        self.wfile.write(name)
    def log_message(self, *args):
        pass
http.server.ThreadingHTTPServer(("", 8000), Handler).serve_forever()
"""


@pytest.fixture(scope="module")
def backend_image() -> str:
    # The service image has the Python the backends need; it is built once per session anyway.
    return docker.service_image()


@contextlib.contextmanager
def _replica(image: str, net: str) -> Iterator[str]:
    with docker.container(
        image,
        "-c",
        BACKEND,
        options=[*docker.HARDENED, "--entrypoint", "python"],
        network_name=net,
        aliases=["counter"],
    ) as container_id:
        yield container_id[:12]  # its hostname


class Traffic:
    """Sequential GETs through the gateway's internal listener, counting who served and what
    failed."""

    def __init__(self, base: str) -> None:
        self.client = httpx.Client(base_url=base, timeout=5)
        self.sent = 0
        self.failures: list[str] = []

    def one(self) -> str:
        assert self.sent < MAX_REQUESTS, "request budget spent"
        self.sent += 1
        try:
            response = self.client.get("/visits/scaling")
        except httpx.TransportError as exc:
            self.failures.append(repr(exc))
            return ""
        if response.status_code != 200:
            self.failures.append(f"{response.status_code} {response.text[:80]}")
            return ""
        return response.text

    def until(self, done: Callable[[str], bool], timeout_s: float) -> float:
        """Requests until done(the hostname that served) is true; the seconds it took."""
        start = time.monotonic()
        while not done(self.one()):
            assert time.monotonic() - start < timeout_s, f"not within {timeout_s} s"
        return time.monotonic() - start


def test_replicas_join_and_leave_the_upstream_without_failed_requests(
    backend_image: str,
) -> None:
    gateway_image = docker.gateway_image()
    with docker.network() as net, contextlib.ExitStack() as stack:
        first = stack.enter_context(_replica(backend_image, net))
        second = stack.enter_context(_replica(backend_image, net))
        gateway = stack.enter_context(
            docker.container(
                gateway_image,
                "/etc/quartet/nginx/container-start.sh",
                options=[
                    *docker.HARDENED,
                    "--user",
                    "101:101",
                    "--volume",
                    f"{REPO / 'nginx'}:/etc/quartet/nginx:ro",
                    "--entrypoint",
                    "sh",
                    "--publish",
                    "127.0.0.1::8081",
                ],
                env={"METRICS_LOG": "/tmp/metrics.log", "NGINX_WORKER_PROCESSES": "1"},  # noqa: S108
                network_name=net,
            )
        )
        internal = f"http://127.0.0.1:{docker.published_port(gateway, 8081)}"
        deadline = time.monotonic() + 30
        while True:
            assert docker.state(gateway)["Running"], "the gateway exited"
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{internal}/_ping/counter", timeout=1).status_code == 200:
                    break
            assert time.monotonic() < deadline, "the gateway did not answer"
            time.sleep(0.2)

        traffic = Traffic(internal)
        stack.callback(traffic.client.close)
        seen: set[str] = set()

        def both_served(name: str) -> bool:
            seen.add(name)
            return {first, second} <= seen

        traffic.until(both_served, JOIN_WITHIN_S)

        # Names that resolve to nothing yet leave the gateway up: those routes are a JSON 502.
        missing = httpx.get(f"{internal}/recommend/1", timeout=5)
        assert missing.status_code == 502
        assert missing.json()["status"] == 502

        # Scale up: a third replica under the same alias gets traffic, nothing fails meanwhile.
        third = stack.enter_context(_replica(backend_image, net))
        joined_s = traffic.until(lambda name: name == third, JOIN_WITHIN_S + 5)

        # Scale down: a stopped replica gets no more requests once the gateway has reloaded.
        docker.docker("stop", "--time", "5", first)
        stopped_at = time.monotonic()
        recent: list[str] = []

        def first_gone(name: str) -> bool:
            recent.append(name)
            return len(recent) >= 60 and first not in recent[-60:]

        traffic.until(first_gone, JOIN_WITHIN_S + 5)
        left_s = time.monotonic() - stopped_at
        logs = docker.docker("logs", gateway).stderr

    print(f"third replica served after {joined_s:.1f} s; the stopped one left after {left_s:.1f} s")
    assert {second, third} <= set(recent[-60:])
    assert traffic.failures == [], traffic.failures[:5]
    assert logs.count("upstreams changed, nginx reloaded") >= 2, logs[-2000:]
