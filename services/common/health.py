"""What an instance says about itself, split by who asks.

/healthz   liveness: the process answers (no I/O). A failure means "restart me".
/readyz    readiness: this instance can serve its share: its lifespan finished starting (the
           service's own data is loaded), its own checks pass (`Kit.readiness`), and it is not
           draining. It never looks at a dependency every instance shares: with one Redis
           shard or MySQL down every instance would fail together, and an orchestrator would
           take them all out of service, turning a partial fault into a total outage while
           pages on the other shards could still be served.
/status    the dependencies (every Redis shard, MySQL): each pinged within
           READY_TIMEOUT_S, "up" or why not, with the time the answer took. Always 200: it is a
           report for people and tools, not a probe, and it carries the service's facts (how it
           runs: the counter's ack mode, ...). The same state is exported continuously as
           `quartet_dependency_up{dependency=...}` (1 up, 0 down) for alerts.
/ping      the stack's trivial endpoint: no I/O, but unlike the probes it goes through every
           middleware (request id, access log, metrics), so benchmarks compare real endpoints
           with it. The gateway serves it on its internal listener only, like the three above.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from fastapi import APIRouter, Request
from prometheus_client import Gauge
from starlette.responses import Response

from services.common.problems import problem
from services.common.responses import OrjsonResponse

log = logging.getLogger(__name__)
Check = Callable[[float], Awaitable[None]]

# One name for every service (the scrape's `job` label says which): one alert covers them all.
# A worker that sees the dependency down pulls the instance's value to 0 (livemin).
DEPENDENCY_UP = Gauge(
    "quartet_dependency_up",
    "1 when this instance's last check of the dependency answered within READY_TIMEOUT_S",
    ["dependency"],
    multiprocess_mode="livemin",
)


@dataclass(frozen=True)
class CheckResult:
    state: str  # "up" or "down"
    detail: str
    seconds: float

    def as_json(self) -> dict[str, object]:
        return {"state": self.state, "detail": self.detail, "ms": round(self.seconds * 1000, 1)}


async def run_check(check: Check, timeout_s: float) -> CheckResult:
    started = time.perf_counter()
    try:
        async with asyncio.timeout(timeout_s):
            await check(timeout_s)
    except TimeoutError:
        detail = f"no answer within {timeout_s:g}s"
    except Exception as exc:  # noqa: BLE001 - any failure means "down", and says why
        detail = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    else:
        return CheckResult("up", "ok", time.perf_counter() - started)
    return CheckResult("down", detail, time.perf_counter() - started)


async def check_all(checks: Mapping[str, Check], timeout_s: float) -> dict[str, CheckResult]:
    names = list(checks)
    results = await asyncio.gather(*(run_check(checks[n], timeout_s) for n in names))
    return dict(zip(names, results, strict=True))


async def check_dependencies(
    checks: Mapping[str, Check], timeout_s: float
) -> dict[str, CheckResult]:
    results = await check_all(checks, timeout_s)
    for name, result in results.items():
        DEPENDENCY_UP.labels(name).set(1 if result.state == "up" else 0)
    return results


async def watch_dependencies(
    checks: Mapping[str, Check], timeout_s: float, interval_s: float
) -> None:
    """Keep `quartet_dependency_up` current, and log each change of a dependency's state once."""
    last: dict[str, str] = {}
    while True:
        for name, result in (await check_dependencies(checks, timeout_s)).items():
            if last.get(name, "up") != result.state:
                level = logging.WARNING if result.state == "down" else logging.INFO
                extra = {"dependency": name, "detail": result.detail}
                log.log(level, f"dependency {result.state}", extra=extra)
            last[name] = result.state
        await asyncio.sleep(interval_s)


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
        state = request.app.state
        if state.draining:
            return problem(503, "not ready: draining", checks={})
        results = await check_all(state.readiness_checks, state.ready_timeout_s)
        checks = {name: r.detail for name, r in results.items()}
        failing = [name for name, r in results.items() if r.state != "up"]
        if failing:
            return problem(503, f"not ready: {', '.join(failing)}", checks=checks)
        return OrjsonResponse({"status": "ready", "checks": checks})

    @router.get("/status")
    async def status(request: Request) -> Response:
        state = request.app.state
        results = await check_dependencies(state.dependency_checks, state.ready_timeout_s)
        down = sorted(name for name, r in results.items() if r.state != "up")
        return OrjsonResponse(
            {
                "status": "degraded" if down else "ok",
                "service": state.kit.service,
                "facts": state.facts,
                "down": down,
                "dependencies": {name: r.as_json() for name, r in results.items()},
            }
        )

    return router
