"""One composed page is one trace: a cluster of its own with tracing on (the console exporter into
the services' logs, every span sampled), one instance and one worker per service, so the session's
test cluster keeps running untraced, as every deployment does by default.

The page goes through the public listener; the aggregator's calls to its peers go through the
internal one, so the gateway's handling of `traceparent` is on both hops."""

from __future__ import annotations

import json
import re
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from cluster.topology import ClusterSettings, Topology
from tests.support.cluster import cluster_env, free_offset

pytestmark = pytest.mark.cluster  # a cluster of its own

W3C = re.compile(r"^00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$")
SERVICES = ("aggregator", "counter", "banner", "recommender")


@dataclass
class TracedCluster:
    topo: Topology
    logs: Path

    @property
    def gateway(self) -> str:
        return self.topo.gateway_url


@pytest.fixture(scope="module")
def traced(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TracedCluster]:
    state = tmp_path_factory.mktemp("traced-cluster")
    offset = free_offset()
    env = cluster_env(
        state,
        offset,
        ENVIRONMENT="test",
        QUARTET_INSTANCES="1",
        QUARTET_WORKERS="1",
        QUARTET_RECOMMENDER_USERS="300",
        OTEL_TRACES_EXPORTER="console",
        OTEL_TRACES_SAMPLER="parentbased_always_on",
        # Spans reach the log within 0.1 s rather than the default 5 s.
        OTEL_BSP_SCHEDULE_DELAY="100",
        # Each service writes its access line inside the request's span.
        **{f"{service.upper()}_ACCESS_LOG": "true" for service in SERVICES},
    )
    up = subprocess.run(
        [sys.executable, "-m", "cluster", "up"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    try:
        assert up.returncode == 0, up.stdout[-3000:] + up.stderr[-3000:]
        topo = Topology(ClusterSettings(STATE_DIR=state, PORT_OFFSET=offset, INSTANCES=1))
        yield TracedCluster(topo, state / "logs")
    finally:
        subprocess.run([sys.executable, "-m", "cluster", "down"], env=env, timeout=180, check=False)


@dataclass(frozen=True)
class Span:
    service: str
    kind: str
    name: str
    trace_id: str
    span_id: str
    parent_id: str | None
    attributes: dict[str, Any]


def _json_lines(path: Path) -> Iterator[dict[str, Any]]:
    for line in path.read_text(errors="replace").splitlines():
        if line.startswith("{"):
            try:
                yield json.loads(line)
            except ValueError:
                continue


def _spans(logs: Path, trace_id: str) -> list[Span]:
    found = []
    for service in SERVICES:
        for line in _json_lines(logs / f"{service}_1.log"):
            context = line.get("context")
            if not isinstance(context, dict) or context.get("trace_id") != f"0x{trace_id}":
                continue
            parent = line.get("parent_id")
            found.append(
                Span(
                    service=line["resource"]["attributes"]["service.name"],
                    kind=line["kind"].removeprefix("SpanKind."),
                    name=line["name"],
                    trace_id=context["trace_id"].removeprefix("0x"),
                    span_id=context["span_id"].removeprefix("0x"),
                    parent_id=parent.removeprefix("0x") if parent else None,
                    attributes=line.get("attributes") or {},
                )
            )
    return found


def _server(spans: list[Span], service: str) -> Span:
    servers = [s for s in spans if s.service == service and s.kind == "SERVER"]
    assert len(servers) == 1, (service, servers)
    return servers[0]


def _trace(logs: Path, trace_id: str) -> list[Span]:
    """The trace's spans, once every service's request span has been exported (bounded wait)."""
    deadline = time.monotonic() + 15
    while True:
        spans = _spans(logs, trace_id)
        if {s.service for s in spans if s.kind == "SERVER"} >= set(SERVICES):
            # The client spans end after the peers' server spans: one more export round.
            time.sleep(0.5)
            return _spans(logs, trace_id)
        assert time.monotonic() < deadline, f"incomplete trace {trace_id}: {spans}"
        time.sleep(0.2)


def _page(traced: TracedCluster, headers: dict[str, str]) -> httpx.Response:
    page_id = f"trace-{secrets.token_hex(4)}"
    # A user no cache has seen: the recommender reads Redis (its L2) and MySQL for it.
    user_id = 5_000_000 + secrets.randbelow(1_000_000)
    response = httpx.get(
        f"{traced.gateway}/api/page/{page_id}",
        params={"campaign_id": 1002, "user_id": user_id, "timeout": 3000},
        headers=headers,
        timeout=10,
    )
    assert response.status_code == 200, response.text
    assert response.json()["errors"] == {}
    return response


def _assert_one_trace(spans: list[Span], trace_id: str, parent: str) -> None:
    assert {s.trace_id for s in spans} == {trace_id}
    assert {s.service for s in spans} == set(SERVICES)
    page = _server(spans, "aggregator")
    assert page.name == "GET /api/page/{page_id}"
    assert page.parent_id == parent
    calls = {s.span_id: s for s in spans if s.service == "aggregator" and s.kind == "CLIENT"}
    http_calls = {
        i
        for i, s in calls.items()
        if "http.request.method" in s.attributes or ("http.method" in s.attributes)
    }
    assert all(calls[i].parent_id == page.span_id for i in http_calls)
    parents_of_peers = []
    for peer in ("counter", "banner", "recommender"):
        served = _server(spans, peer)
        assert served.parent_id in http_calls, (peer, served, calls)
        parents_of_peers.append(served.parent_id)
    assert len(set(parents_of_peers)) == 3  # one call each
    # Stores: spans under the service's own request span.
    counter, recommender = _server(spans, "counter"), _server(spans, "recommender")

    def store_spans(server: Span, system: str) -> list[Span]:
        return [
            s
            for s in spans
            if s.service == server.service
            and s.kind == "CLIENT"
            and s.parent_id == server.span_id
            and s.attributes.get("db.system") == system
        ]

    assert store_spans(counter, "redis"), spans
    assert store_spans(recommender, "redis"), spans
    mysql = store_spans(recommender, "mysql")
    assert mysql, spans
    assert all(s.name == s.attributes["db.operation.name"] for s in mysql)
    assert all(s.attributes["db.system.name"] == "mysql" for s in mysql)


def _access_lines(logs: Path, trace_id: str) -> dict[str, list[dict[str, Any]]]:
    lines: dict[str, list[dict[str, Any]]] = {}
    for service in SERVICES:
        lines[service] = [
            line
            for line in _json_lines(logs / f"{service}_1.log")
            if line.get("logger") == "access" and line.get("trace_id") == trace_id
        ]
    return lines


def _gateway_lines(logs: Path, trace_id: str, want: int = 4) -> list[dict[str, Any]]:
    """The gateway's access lines of one trace: the page's and its parts' (bounded wait)."""
    deadline = time.monotonic() + 5  # nginx flushes its buffered log every second
    while True:
        lines = [
            line
            for line in _json_lines(logs / "nginx.log")
            if str(line.get("traceparent", "")).startswith(f"00-{trace_id}-")
        ]
        if len(lines) >= want or time.monotonic() > deadline:
            return lines
        time.sleep(0.2)


def test_a_composed_page_is_one_trace(traced: TracedCluster) -> None:
    trace_id, parent = secrets.token_hex(16), secrets.token_hex(8)
    _page(traced, {"traceparent": f"00-{trace_id}-{parent}-01", "tracestate": "quartet=test"})
    spans = _trace(traced.logs, trace_id)
    _assert_one_trace(spans, trace_id, parent)

    # Every service's line written in the request carries the trace and its own request span.
    access = _access_lines(traced.logs, trace_id)
    for service in SERVICES:
        assert access[service], service
        server = _server(spans, service)
        assert {line["span_id"] for line in access[service]} == {server.span_id}, service

    # The gateway logs the client's traceparent on the page, the aggregator's on each part.
    gateway = _gateway_lines(traced.logs, trace_id)
    public = [line for line in gateway if line["listener"] == "public"]
    assert [line["traceparent"] for line in public] == [f"00-{trace_id}-{parent}-01"]
    internal = {line["traceparent"] for line in gateway if line["listener"] == "internal"}
    peers = {_server(spans, peer).parent_id for peer in ("counter", "banner", "recommender")}
    assert internal == {f"00-{trace_id}-{span_id}-01" for span_id in peers}


def test_without_a_traceparent_the_gateway_mints_one_from_the_request_id(
    traced: TracedCluster,
) -> None:
    response = _page(traced, {})
    request_id = response.headers["x-request-id"]
    minted = f"00-{request_id}-{request_id[16:]}-01"
    assert W3C.match(minted)
    spans = _trace(traced.logs, request_id)
    _assert_one_trace(spans, request_id, request_id[16:])
    public = [
        line for line in _gateway_lines(traced.logs, request_id) if line["listener"] == "public"
    ]
    assert [(line["request_id"], line["traceparent"]) for line in public] == [(request_id, minted)]


@pytest.mark.parametrize(
    "hostile",
    [
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",  # an all-zero trace id
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",  # an all-zero parent
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",  # upper case
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",  # the forbidden version
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\tx",  # trailing junk
        "not a traceparent",
    ],
)
def test_a_malformed_traceparent_is_replaced(traced: TracedCluster, hostile: str) -> None:
    response = httpx.get(
        f"{traced.gateway}/api/page/malformed?timeout=2000",
        headers={"traceparent": hostile},
        timeout=10,
    )
    assert response.status_code == 200
    request_id = response.headers["x-request-id"]
    # The page and its one part (no campaign, no user: the visits only).
    lines = _gateway_lines(traced.logs, request_id, want=2)
    public = [line for line in lines if line["listener"] == "public"]
    assert [line["traceparent"] for line in public] == [f"00-{request_id}-{request_id[16:]}-01"]
    assert (
        _server(_trace_of_page(traced.logs, request_id), "aggregator").parent_id
        == (request_id[16:])
    )


def _trace_of_page(logs: Path, trace_id: str) -> list[Span]:
    """The aggregator's spans of a page that asked only the counter (bounded wait)."""
    deadline = time.monotonic() + 15
    while True:
        spans = _spans(logs, trace_id)
        if any(s.service == "aggregator" and s.kind == "SERVER" for s in spans):
            return spans
        assert time.monotonic() < deadline, f"no aggregator span for {trace_id}"
        time.sleep(0.2)
