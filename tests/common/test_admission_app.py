"""Admission control in a real app (create_app, in-process through httpx): a route whose latency
the test sets, so the limit can be watched falling under slow answers and recovering."""

from __future__ import annotations

import asyncio
import re
import time

import httpx
import pytest
from fastapi import APIRouter, FastAPI
from prometheus_client.parser import text_string_to_metric_families
from pydantic import ValidationError

from services.common.app import create_app
from services.common.settings import ServiceSettings
from services.counter.settings import CounterSettings
from tests.support.asgi import serve

TOKEN = "admission-test-token-0123456789"
# Generous against the slow route's second: a refusal that waited for a slot would take it.
FAST_S = 0.5
SLOW_S = 1.0


class Delay:
    seconds = 0.002


def _app(service: str, delay: Delay, **overrides: object) -> FastAPI:
    router = APIRouter()

    @router.get("/work")
    async def work() -> dict[str, bool]:
        await asyncio.sleep(delay.seconds)
        return {"done": True}

    options: dict[str, object] = {
        "ADMIN_TOKEN": TOKEN,
        "ADMISSION_MIN_LIMIT": 2,
        "ADMISSION_MAX_LIMIT": 40,
        # Far under the slow route's second, far over what CPU noise adds to the fast one (the
        # in-process client and app share one loop, so a wave of 40 takes a few ms each).
        "ADMISSION_FLOOR_MS": 100,
        "ADMISSION_WINDOW_S": 0.05,
    }
    options.update(overrides)
    settings = ServiceSettings(**options)  # type: ignore[arg-type]
    return create_app(service, settings, routers=[router])


def _gauge(metrics: str, name: str, service: str) -> float:
    match = re.search(rf'^{name}{{service="{service}"}} (\S+)$', metrics, re.M)
    assert match, f"{name} for {service} not in /metrics"
    return float(match[1])


def _refused(metrics: str, service: str, reason: str) -> float:
    for family in text_string_to_metric_families(metrics):
        for sample in family.samples:
            if sample.name == "quartet_admission_refused_total" and sample.labels == {
                "service": service,
                "reason": reason,
            }:
                return sample.value
    raise AssertionError(f"no {reason} refusals counted for {service}")


async def _timed(client: httpx.AsyncClient) -> tuple[httpx.Response, float]:
    started = time.perf_counter()
    response = await client.get("/work")
    return response, time.perf_counter() - started


async def _wave(client: httpx.AsyncClient, n: int) -> list[tuple[httpx.Response, float]]:
    return await asyncio.gather(*(_timed(client) for _ in range(n)))


async def _limit(client: httpx.AsyncClient, service: str) -> float:
    return _gauge((await client.get("/metrics")).text, "quartet_admission_limit", service)


async def test_the_limit_falls_under_slow_answers_refusals_are_fast_and_it_recovers() -> None:
    service, delay = "admission_app", Delay()
    async with serve(_app(service, delay)) as client:
        assert await _limit(client, service) == 40
        for _ in range(10):  # the baseline: a few milliseconds
            assert {r.status_code for r, _ in await _wave(client, 20)} == {200}
        assert await _limit(client, service) == 40

        delay.seconds = SLOW_S
        refusals: list[tuple[httpx.Response, float]] = []
        deadline = time.monotonic() + 30
        while await _limit(client, service) > 4 and time.monotonic() < deadline:
            answers = await _wave(client, 30)
            assert {r.status_code for r, _ in answers} <= {200, 503}
            refusals += [(r, s) for r, s in answers if r.status_code == 503]
        assert await _limit(client, service) <= 4
        # Over the limit now: a wave beyond it is partly refused, each refusal at once.
        answers = await _wave(client, 30)
        refusals += [(r, s) for r, s in answers if r.status_code == 503]
        assert refusals
        for response, seconds in refusals:
            assert seconds < FAST_S, seconds
            assert response.headers["retry-after"] == "1"
            assert response.headers["content-type"] == "application/problem+json"
            assert response.json()["status"] == 503
        metrics = (await client.get("/metrics")).text
        assert _refused(metrics, service, "concurrency") == len(refusals)
        assert _refused(metrics, service, "queue") == 0
        # Refusals are not the service's errors: the request metrics never saw them.
        assert 'handler="/work",method="GET",status="503"' not in metrics

        delay.seconds = 0.002
        deadline = time.monotonic() + 30
        while await _limit(client, service) < 40 and time.monotonic() < deadline:
            await _wave(client, 40)
        assert await _limit(client, service) == 40
        assert {r.status_code for r, _ in await _wave(client, 30)} == {200}


async def test_a_request_that_waited_too_long_ahead_of_the_worker_is_refused_at_once() -> None:
    """The gateway's X-Request-Start stamp says when it sent the request on: one that waited
    longer than the burst interval before the worker took it up is refused without being run."""
    service, delay = "admission_queue", Delay()
    app = _app(service, delay, ADMISSION_QUEUE_TARGET_MS=5, ADMISSION_QUEUE_INTERVAL_MS=50)
    async with serve(app) as client:
        delay.seconds = SLOW_S  # a refusal that ran the route would take a second

        def stamped(waited_s: float) -> dict[str, str]:
            return {"X-Request-Start": f"t={time.time() - waited_s:.3f}"}

        started = time.perf_counter()
        refused = await client.get("/work", headers=stamped(0.5))
        assert time.perf_counter() - started < FAST_S
        assert refused.status_code == 503
        assert refused.headers["retry-after"] == "1"
        assert refused.json()["status"] == 503
        delay.seconds = 0.002
        assert (await client.get("/work", headers=stamped(0.0))).status_code == 200
        assert (await client.get("/work", headers={"X-Request-Start": "junk"})).status_code == 200
        assert (await client.get("/work")).status_code == 200  # not through the gateway
        assert (await client.get("/healthz", headers=stamped(5))).status_code == 200
        metrics = (await client.get("/metrics")).text
        assert _refused(metrics, service, "queue") == 1
        assert _refused(metrics, service, "concurrency") == 0


async def test_probes_are_never_refused() -> None:
    service, delay = "admission_probes", Delay()
    app = _app(service, delay, ADMISSION_MIN_LIMIT=1, ADMISSION_MAX_LIMIT=1)
    async with serve(app) as client:
        delay.seconds = SLOW_S
        held = asyncio.create_task(client.get("/work"))
        await asyncio.sleep(0.1)  # the one slot is taken
        assert (await client.get("/work")).status_code == 503
        for path in ("/healthz", "/readyz", "/ping", "/metrics", "/status"):
            assert (await client.get(path)).status_code == 200, path
        assert (await held).status_code == 200


async def test_off_means_no_refusals_and_no_gauge() -> None:
    service, delay = "admission_off", Delay()
    app = _app(service, delay, ADMISSION=False, ADMISSION_MIN_LIMIT=1, ADMISSION_MAX_LIMIT=1)
    async with serve(app) as client:
        delay.seconds = 0.2
        answers = await _wave(client, 5)
        assert {r.status_code for r, _ in answers} == {200}
        assert (
            f'quartet_admission_limit{{service="{service}"}}'
            not in (await client.get("/metrics")).text
        )


def test_settings_read_with_the_service_prefix_and_refuse_crossed_bounds(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ADMIN_TOKEN", TOKEN)
    monkeypatch.setenv("COUNTER_ADMISSION_MIN_LIMIT", "50")
    monkeypatch.setenv("COUNTER_ADMISSION_MAX_LIMIT", "80")
    settings = CounterSettings()
    assert (settings.ADMISSION, settings.ADMISSION_MIN_LIMIT) == (True, 50)
    monkeypatch.setenv("COUNTER_ADMISSION_MAX_LIMIT", "40")
    with pytest.raises(ValidationError, match="COUNTER_ADMISSION_MIN_LIMIT is above"):
        CounterSettings()
