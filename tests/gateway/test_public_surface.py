"""What the public listener shows and hides."""

from __future__ import annotations

import uuid

import httpx
import pytest

from tests.support.cluster import RunningCluster


@pytest.mark.parametrize(
    "path",
    [
        "/metrics",
        "/healthz",
        "/readyz",
        "/status",
        "/ping",
        "/_ping/counter",
        "/_status",
        "/docs",
        "/openapi.json",
    ],
)
async def test_internal_routes_are_not_public(cluster: RunningCluster, path: str) -> None:
    async with httpx.AsyncClient(base_url=cluster.gateway) as client:
        response = await client.get(path)
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"


async def test_the_gateway_has_its_own_health_route(cluster: RunningCluster) -> None:
    async with httpx.AsyncClient(base_url=cluster.gateway) as client:
        response = await client.get("/gateway/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


ADMIN_ROUTES = [("/api/campaigns/1001/gift-codes", {"count": 1}), ("/invalidate-cache/1", None)]


@pytest.mark.parametrize(("path", "body"), ADMIN_ROUTES)
async def test_admin_routes_are_not_on_the_public_listener(
    cluster: RunningCluster, path: str, body: object
) -> None:
    admin = {"Authorization": f"Bearer {cluster.admin_token}"}
    async with httpx.AsyncClient(base_url=cluster.gateway) as client:
        # Not even with the token: the public listener does not route them (GATEWAY_PUBLIC_ADMIN).
        response = await client.post(path, json=body, headers=admin)
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize(("path", "body"), ADMIN_ROUTES)
async def test_admin_routes_on_the_internal_listener_need_the_token(
    cluster: RunningCluster, path: str, body: object
) -> None:
    async with httpx.AsyncClient(base_url=cluster.internal) as client:
        anonymous = await client.post(path, json=body)
        forged = await client.post(path, json=body, headers={"Authorization": "Bearer forged"})
        admin = {"Authorization": f"Bearer {cluster.admin_token}"}
        if path.startswith("/api/"):
            admin["Idempotency-Key"] = f"surface-{uuid.uuid4().hex}"
        allowed = await client.post(path, json=body, headers=admin)
    for response in (anonymous, forged):
        assert response.status_code == 401
        assert response.headers["content-type"] == "application/problem+json"
    assert allowed.status_code in (200, 201), allowed.text


async def test_an_oversized_body_is_413_json(cluster: RunningCluster) -> None:
    async with httpx.AsyncClient(base_url=cluster.gateway) as client:
        response = await client.post(
            "/users/1/events",
            content=b'{"type": "search", "category": "' + b"x" * 100_000 + b'"}',
            headers={"content-type": "application/json"},
        )
    assert response.status_code == 413
    assert response.json()["status"] == 413
