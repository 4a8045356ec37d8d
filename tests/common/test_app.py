"""What create_app gives every service: problem+json errors, request ids, health, metrics, auth."""

from __future__ import annotations

import json
import logging
from typing import Annotated

import pytest
import redis
from fastapi import APIRouter, Depends, Query

from services.common.app import create_app
from services.common.auth import require_admin
from services.common.problems import DependencyUnavailable, OverLimit
from services.common.settings import ServiceSettings
from tests.support.asgi import serve
from tests.support.processes import free_port

TOKEN = "app-test-token-0123456789abcdef"


def _router() -> APIRouter:
    router = APIRouter()

    @router.get("/items/{item_id}")
    async def item(item_id: int, size: Annotated[int, Query(ge=1, le=10)] = 1) -> dict[str, int]:
        logging.getLogger("test.items").info("serving item")
        return {"item_id": item_id, "size": size}

    @router.get("/boom")
    async def boom() -> None:
        raise RuntimeError("an unforeseen bug")

    @router.get("/down")
    async def down() -> None:
        raise DependencyUnavailable("redis_7071 is not answering")

    @router.get("/store")
    async def store() -> None:
        raise redis.exceptions.ConnectionError("Error 111 connecting to 127.0.0.1:7071")

    @router.get("/full")
    async def full() -> None:
        raise OverLimit("too many", retry_after_s=3)

    @router.post("/admin/thing", dependencies=[Depends(require_admin)])
    async def admin_thing() -> dict[str, bool]:
        return {"done": True}

    return router


def _settings(**overrides: object) -> ServiceSettings:
    return ServiceSettings(ADMIN_TOKEN=TOKEN, **overrides)  # type: ignore[arg-type]


async def test_validation_errors_are_422_problems_without_the_input() -> None:
    async with serve(create_app("apptest", _settings(), routers=[_router()])) as client:
        response = await client.get("/items/abc", params={"size": "x" * 5000})
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["status"] == 422
    assert body["title"] == "Unprocessable Entity"
    assert {tuple(e["loc"]) for e in body["errors"]} == {("path", "item_id"), ("query", "size")}
    assert "x" * 100 not in response.text


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/nope", 404),
        ("DELETE", "/items/1", 405),
        ("GET", "/down", 503),
        ("GET", "/store", 503),
        ("GET", "/boom", 500),
    ],
)
async def test_errors_are_problem_documents(method: str, path: str, status: int) -> None:
    async with serve(create_app("apptest", _settings(), routers=[_router()])) as client:
        response = await client.request(method, path)
    assert response.status_code == status
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["status"] == status
    assert "Traceback" not in response.text
    assert "an unforeseen bug" not in response.text


async def test_over_limit_carries_retry_after() -> None:
    async with serve(create_app("apptest", _settings(), routers=[_router()])) as client:
        response = await client.get("/full")
    assert response.status_code == 429
    assert response.headers["retry-after"] == "3"


async def test_request_id_is_adopted_echoed_and_logged(capsys: pytest.CaptureFixture[str]) -> None:
    app = create_app("apptest", _settings(ACCESS_LOG=True), routers=[_router()])
    async with serve(app) as client:
        given = await client.get("/items/1", headers={"X-Request-ID": "abc123"})
        minted = await client.get("/items/2")
        hostile = await client.get("/items/3", headers={"X-Request-ID": "bad id\nforged line"})
    assert given.headers["x-request-id"] == "abc123"
    assert len(minted.headers["x-request-id"]) == 32
    assert hostile.headers["x-request-id"] != "bad id\nforged line"
    lines = [
        json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")
    ]
    served = [line for line in lines if line["message"] == "serving item"]
    assert served[0]["request_id"] == "abc123"
    assert served[0]["service"] == "apptest"
    access = [line for line in lines if line["logger"] == "access"]
    assert {line["request_id"] for line in access} >= {"abc123", minted.headers["x-request-id"]}
    assert all("time" in line and "level" in line for line in lines)


async def test_admin_needs_the_bearer_token() -> None:
    async with serve(create_app("apptest", _settings(), routers=[_router()])) as client:
        missing = await client.post("/admin/thing")
        wrong = await client.post("/admin/thing", headers={"Authorization": "Bearer nope"})
        right = await client.post("/admin/thing", headers={"Authorization": f"Bearer {TOKEN}"})
    assert missing.status_code == wrong.status_code == 401
    assert missing.headers["www-authenticate"] == "Bearer"
    assert right.status_code == 200
    assert right.json() == {"done": True}


async def test_a_dead_shard_leaves_the_instance_ready_and_status_names_it(
    scratch_redis: int,
) -> None:
    dead = free_port()
    shards = {
        "up_shard": f"redis://127.0.0.1:{scratch_redis}",
        "down_shard": f"redis://127.0.0.1:{dead}",
    }
    app = create_app("apptest", _settings(REDIS_SHARDS=shards, READY_TIMEOUT_S=0.5), routers=[])
    async with serve(app) as client:
        alive = await client.get("/healthz")
        ready = await client.get("/readyz")
        status = await client.get("/status")
        metrics = (await client.get("/metrics")).text
    assert alive.status_code == 200
    # A shard every instance shares is not this instance's readiness (health.py).
    assert ready.status_code == 200
    assert ready.json()["status"] == "ready"
    assert status.status_code == 200
    body = status.json()
    assert body["status"] == "degraded"
    assert body["down"] == ["redis:down_shard"]
    assert body["dependencies"]["redis:up_shard"]["state"] == "up"
    assert body["dependencies"]["redis:down_shard"]["detail"].startswith("ConnectionError")
    assert 'quartet_dependency_up{dependency="redis:down_shard"} 0.0' in metrics
    assert 'quartet_dependency_up{dependency="redis:up_shard"} 1.0' in metrics


async def test_readyz_fails_on_the_instance_s_own_check_and_when_draining() -> None:
    app = create_app("apptest", _settings(), routers=[])

    async def not_loaded(timeout_s: float) -> None:
        raise RuntimeError("sets not loaded")

    app.state.kit.readiness["sets"] = not_loaded
    async with serve(app) as client:
        unloaded = await client.get("/readyz")
        del app.state.kit.readiness["sets"]
        ready = await client.get("/readyz")
        app.state.draining = True
        draining = await client.get("/readyz")
    assert unloaded.status_code == 503
    assert unloaded.json()["detail"] == "not ready: sets"
    assert unloaded.json()["checks"]["sets"] == "RuntimeError: sets not loaded"
    assert ready.status_code == 200
    assert draining.status_code == 503
    assert draining.json()["detail"] == "not ready: draining"


async def test_metrics_keep_status_codes_and_skip_health() -> None:
    async with serve(create_app("apptest", _settings(), routers=[_router()])) as client:
        await client.get("/items/1")
        await client.get("/items/x")
        await client.get("/healthz")
        metrics = (await client.get("/metrics")).text
    assert 'handler="/items/{item_id}",method="GET",status="422"' in metrics
    assert 'handler="/items/{item_id}",method="GET",status="200"' in metrics
    assert 'handler="/healthz"' not in metrics
