"""Page composition through the gateway, with each peer service stopped in turn."""

from __future__ import annotations

import asyncio
import json
import time

import httpx
import pytest

from tests.support.cluster import RunningCluster

PAGE = "/api/page/home-page?campaign_id=1002&user_id=42&timeout=1500"


async def test_a_whole_page(cluster: RunningCluster) -> None:
    async with httpx.AsyncClient(base_url=cluster.gateway) as client:
        first = await client.get(PAGE)
        second = await client.get(PAGE)
    assert first.status_code == 200
    body = first.json()
    assert body["errors"] == {}
    assert body["page_id"] == "home-page"
    assert isinstance(body["visits"]["visits"], int)
    assert body["banner"]["campaign_id"] == 1002
    assert body["recommendations"]["user_id"] == 42
    # The banner's visitor cookie travels through the aggregator both ways.
    assert "quartet_visitor" in first.headers["set-cookie"]
    assert second.json()["banner"]["banner_id"] != body["banner"]["banner_id"]


@pytest.mark.parametrize(
    ("group", "part"),
    [("counter", "visits"), ("banner", "banner"), ("recommender", "recommendations")],
)
async def test_a_peer_down_leaves_a_partial_page(
    cluster: RunningCluster, group: str, part: str
) -> None:
    await asyncio.to_thread(cluster.ctl, "stop", f"{group}:*")
    try:
        async with httpx.AsyncClient(base_url=cluster.gateway) as client:
            response = await client.get(PAGE)
    finally:
        await asyncio.to_thread(cluster.ctl, "start", f"{group}:*")
        for index in (1, 2):
            await asyncio.to_thread(cluster.wait_ready, f"{group}_{index}")
    assert response.status_code == 200
    body = response.json()
    assert body[part] is None
    assert body["errors"] == {part: "unavailable"}
    others = {"visits", "banner", "recommendations"} - {part}
    assert all(body[other] is not None for other in others)


async def test_nothing_arrived_is_an_error(cluster: RunningCluster) -> None:
    # No campaign and no user: the visits are the only part asked for, and the counter is down.
    await asyncio.to_thread(cluster.ctl, "stop", "counter:*")
    try:
        async with httpx.AsyncClient(base_url=cluster.gateway) as client:
            response = await client.get("/api/page/nothing-arrived?timeout=1000")
    finally:
        await asyncio.to_thread(cluster.ctl, "start", "counter:*")
        for index in (1, 2):
            await asyncio.to_thread(cluster.wait_ready, f"counter_{index}")
        await _visits_arrive_again(cluster)
    assert response.status_code == 502
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["status"] == 502
    assert body["detail"] == "no part of the page arrived"
    assert body["errors"] == {"visits": "unavailable"}


async def _visits_arrive_again(cluster: RunningCluster, timeout_s: float = 30) -> None:
    """nginx counts every counter failed for its fail_timeout (5 s) after they were all down:
    the next tests need the visits part back, so poll for it."""
    deadline = time.monotonic() + timeout_s
    async with httpx.AsyncClient(base_url=cluster.gateway) as client:
        while time.monotonic() < deadline:
            answer = await client.get("/api/page/nothing-arrived?timeout=1000")
            if answer.status_code == 200:
                return
            await asyncio.sleep(0.25)
    raise AssertionError(f"the counter is not reachable {timeout_s}s after its restart")


async def test_a_missing_part_is_a_partial_page_and_bad_input_a_422(
    cluster: RunningCluster,
) -> None:
    async with httpx.AsyncClient(base_url=cluster.gateway) as client:
        response = await client.get("/api/page/x?campaign_id=987654&timeout=1000")
        bad = await client.get("/api/page/x?timeout=0")
        bad_page = await client.get("/api/page/bad%20id")
    # The counter answers, the unknown campaign is a 404: a partial page, not an error.
    assert response.status_code == 200
    assert response.json()["errors"] == {"banner": "not_found"}
    assert response.json()["visits"] is not None
    assert bad.status_code == 422
    assert bad_page.status_code == 422


async def test_fanout_through_the_gateway(cluster: RunningCluster) -> None:
    async with httpx.AsyncClient(base_url=cluster.gateway, timeout=15) as client:
        smart = await client.get("/api/smart", params={"timeout": 3000})
        bad = await client.get("/api/all")
    # The simulator fails now and then; a success or an honest 502/504, never a 500.
    assert smart.status_code in {200, 502, 504}
    if smart.status_code == 200:
        assert isinstance(smart.json()["time"], int)
    assert bad.status_code == 422


def _gateway_lines(cluster: RunningCluster, request_id: str, want: int) -> list[dict[str, object]]:
    """The gateway's access lines that carry one request id (nginx flushes its log every second:
    a bounded wait)."""
    log = cluster.topo.state / "logs" / "nginx.log"
    deadline = time.monotonic() + 5
    while True:
        lines = []
        for raw in log.read_text(errors="replace").splitlines():
            if request_id in raw and raw.startswith("{"):
                line = json.loads(raw)
                if line.get("request_id") == request_id:
                    lines.append(line)
        if len(lines) >= want or time.monotonic() > deadline:
            return lines
        time.sleep(0.2)


async def test_a_pages_parts_go_by_the_pages_request_id(cluster: RunningCluster) -> None:
    """The aggregator forwards its request id; the internal listener keeps it, so the gateway's
    log (and each peer's) names the page and its three parts by one id."""
    async with httpx.AsyncClient(base_url=cluster.gateway) as client:
        # A client's own id is never taken on the public listener.
        page = await client.get(PAGE, headers={"X-Request-ID": "f" * 32})
    assert page.status_code == 200
    assert page.json()["errors"] == {}
    request_id = page.headers["x-request-id"]
    assert len(request_id) == 32
    assert request_id != "f" * 32
    lines = _gateway_lines(cluster, request_id, want=4)
    by_listener = sorted((str(line["listener"]), str(line["uri"]).split("?")[0]) for line in lines)
    assert [listener for listener, _ in by_listener] == ["internal"] * 3 + ["public"], by_listener
    assert any(uri.startswith("/api/page/") for _, uri in by_listener)


@pytest.mark.parametrize(
    ("sent", "kept"), [("0123456789abcdef" * 2, True), ("not-an-id", False), ("A" * 32, False)]
)
async def test_the_internal_listener_keeps_a_callers_request_id_of_its_form(
    cluster: RunningCluster, sent: str, kept: bool
) -> None:
    async with httpx.AsyncClient(base_url=cluster.internal) as client:
        answer = await client.get("/_ping/counter", headers={"X-Request-ID": sent})
    echoed = answer.headers["x-request-id"]
    assert (echoed == sent) is kept
    assert len(echoed) == 32
