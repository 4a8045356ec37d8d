"""Liveness (`/healthz`: the process answers, no I/O) and readiness (`/readyz`: every dependency
answers within READY_TIMEOUT_S). A 503 from /readyz names each failing dependency.

`/ping` is the stack's trivial endpoint: no I/O, but unlike the probes it goes through every
middleware (request id, access log, metrics), so benchmarks use it as the ceiling a real endpoint
of the same stack is compared with. The gateway serves it on its internal listener only."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping

from fastapi import APIRouter, Request
from starlette.responses import Response

from services.common.problems import problem
from services.common.responses import OrjsonResponse

Check = Callable[[float], Awaitable[None]]


async def _run(check: Check, timeout_s: float) -> str:
    try:
        async with asyncio.timeout(timeout_s):
            await check(timeout_s)
    except TimeoutError:
        return f"no answer within {timeout_s:g}s"
    except Exception as exc:  # noqa: BLE001 - any failure means "not ready", and says why
        return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return "ok"


def health_router() -> APIRouter:
    router = APIRouter(include_in_schema=False)

    @router.get("/healthz")
    async def healthz() -> Response:
        return OrjsonResponse({"status": "ok"})

    @router.get("/ping")
    async def ping() -> Response:
        return OrjsonResponse({"pong": True})

    @router.get("/readyz")
    async def readyz(request: Request) -> Response:
        checks: Mapping[str, Check] = request.app.state.readiness_checks
        timeout_s: float = request.app.state.ready_timeout_s
        names = list(checks)
        results = dict(
            zip(
                names,
                await asyncio.gather(*(_run(checks[n], timeout_s) for n in names)),
                strict=True,
            )
        )
        failing = [name for name, result in results.items() if result != "ok"]
        if failing:
            return problem(503, f"not ready: {', '.join(failing)}", checks=results)
        return OrjsonResponse({"status": "ready", "checks": results})

    return router
