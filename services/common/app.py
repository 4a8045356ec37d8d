"""`create_app`: what every service is made of, so a service file only holds its own routes.

It wires JSON logs with request ids, problem+json errors, `/healthz`, `/readyz`, `/status`,
`/metrics`, the Redis shards and the MySQL pool (opened and closed with the app), migrations at
start, the dependency watch, admission control per worker, and the optional cluster-wide
in-flight cap.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from functools import cache, partial
from typing import Any

import aiomysql
from fastapi import APIRouter, FastAPI
from prometheus_fastapi_instrumentator import Instrumentator, metrics
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_delay, wait_exponential

from services.common import migrations, mysql, tracing
from services.common.admission import AdaptiveLimit
from services.common.admission_middleware import AdmissionMiddleware
from services.common.health import Check, health_router, watch_dependencies
from services.common.limiter import InFlightLimiter, InFlightLimitMiddleware
from services.common.logs import configure_logging
from services.common.problems import install_handlers
from services.common.queue_delay import QueueDelay
from services.common.redis_shards import RedisShards
from services.common.requestctx import QUIET_PATHS, RequestContextMiddleware
from services.common.responses import OrjsonResponse
from services.common.settings import ServiceSettings

log = logging.getLogger(__name__)
# The probes, and the trivial endpoint operators and benchmarks use as a yardstick.
ADMISSION_EXEMPT = QUIET_PATHS | {"/ping"}
# How long a starting instance waits for MySQL before giving up (the process manager restarts it).
MYSQL_START_TIMEOUT_S = 30.0


@dataclass
class Kit:
    """The clients a service's routes use, opened by the app's lifespan."""

    service: str
    settings: ServiceSettings
    redis: RedisShards | None = None
    mysql: aiomysql.Pool | None = None
    # This instance's own conditions for serving (its data loaded, ...): `/readyz`.
    readiness: dict[str, Check] = field(default_factory=dict)
    # What every instance shares (shards, MySQL, peers): `/status` and `quartet_dependency_up`,
    # never readiness (health.py says why).
    dependencies: dict[str, Check] = field(default_factory=dict)
    # How this instance runs, for `/status` (the counter's ack mode, ...): settings a person or a
    # tool (`make chaos`) needs to interpret what the instance answers. Never a secret.
    facts: dict[str, object] = field(default_factory=dict)

    def need_redis(self) -> RedisShards:
        if self.redis is None:
            raise RuntimeError(f"{self.service} needs REDIS_SHARDS")
        return self.redis

    def need_mysql(self) -> aiomysql.Pool:
        if self.mysql is None:
            raise RuntimeError(f"{self.service} needs MYSQL_DSN")
        return self.mysql


# Latency buckets for services that answer in milliseconds: the SLO lines (25 ms p99 at half
# load, 100 ms under the 1,000-user profile) fall on bucket edges.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


@cache
def _http_metrics() -> tuple[Callable[[metrics.Info], None], ...]:
    """The RED metrics: requests by handler, method and exact status, and latency by handler.

    Only these two: the instrumentator's default set (sizes, a second latency histogram) cost a
    measurable share of a trivial request. Built once per process, so an app built again in the
    same process (tests) records into the same series instead of silently into none.
    """
    requests = metrics.requests()
    latency = metrics.latency(should_include_status=False, buckets=LATENCY_BUCKETS)
    assert requests is not None
    assert latency is not None
    return requests, latency


ServiceLifespan = Callable[[FastAPI, Kit], AbstractAsyncContextManager[None]]


async def _open_mysql(kit: Kit) -> aiomysql.Pool:
    settings = kit.settings
    assert settings.MYSQL_DSN is not None
    async for attempt in AsyncRetrying(
        stop=stop_after_delay(MYSQL_START_TIMEOUT_S),
        wait=wait_exponential(multiplier=0.2, max=3),
        retry=retry_if_exception_type((OSError, aiomysql.Error)),
        reraise=True,
    ):
        with attempt:
            pool = await mysql.create_pool(settings.MYSQL_DSN, size=settings.MYSQL_POOL_SIZE)
    if settings.MIGRATE_ON_START:
        await migrations.apply(pool, kit.service, migrations.service_migrations(kit.service))
    return pool


def lazy_app(build: Callable[[], FastAPI]) -> Callable[[str], FastAPI]:
    """A module `__getattr__` that builds `app` from the environment on first access.

    `gunicorn services.<service>.app:app` finds `app` as usual, while importing the module (tests,
    tooling) needs no configuration.
    """

    @cache
    def built() -> FastAPI:
        return build()

    def module_getattr(name: str) -> FastAPI:
        if name == "app":
            return built()
        raise AttributeError(name)

    return module_getattr


@asynccontextmanager
async def background(*jobs: Coroutine[Any, Any, None]) -> AsyncIterator[None]:
    """Run the jobs as tasks for the life of the block; cancel and await them on exit."""
    tasks = [asyncio.create_task(job) for job in jobs]
    try:
        yield
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def create_app(
    service: str,
    settings: ServiceSettings,
    *,
    routers: Sequence[APIRouter],
    lifespan: ServiceLifespan | None = None,
    needs_mysql: bool = False,
) -> FastAPI:
    # Per worker: gunicorn builds the app after the fork (tracing.py).
    tracer_provider = tracing.setup(service)
    configure_logging(service, settings.LOG_LEVEL, traced=tracer_provider is not None)
    kit = Kit(service=service, settings=settings)
    if settings.REDIS_SHARDS:
        # Clients connect lazily, so they can be built before the event loop runs.
        kit.redis = RedisShards(
            settings.REDIS_SHARDS,
            pool_size=settings.REDIS_POOL_SIZE,
            timeout_s=settings.REDIS_TIMEOUT_S,
        )
        for name in kit.redis.clients:
            kit.dependencies[f"redis:{name}"] = partial(kit.redis.ping, name)
    if needs_mysql and settings.MYSQL_DSN is None:
        raise ValueError(f"{service} needs MYSQL_DSN")

    @asynccontextmanager
    async def run(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            if tracer_provider is not None:
                # The last thing on the way out, after the service's own shutdown (the counter's
                # final flush has spans too).
                stack.callback(tracing.shutdown)
            if kit.redis is not None:
                stack.push_async_callback(kit.redis.close)
            if settings.MYSQL_DSN is not None:
                pool = kit.mysql = await _open_mysql(kit)
                kit.dependencies["mysql"] = partial(mysql.ping, pool)

                async def close_pool() -> None:
                    pool.close()
                    await pool.wait_closed()

                stack.push_async_callback(close_pool)
            if lifespan is not None:
                await stack.enter_async_context(lifespan(app, kit))
            watch = watch_dependencies(
                kit.dependencies, settings.READY_TIMEOUT_S, settings.DEPENDENCY_CHECK_INTERVAL_S
            )
            if tracer_provider is not None:
                watch = tracing.untraced(watch)
            await stack.enter_async_context(background(watch))
            log.info("started", extra={"shards": list(settings.REDIS_SHARDS)})
            yield
            app.state.draining = True
            log.info("stopping")

    app = FastAPI(
        title=f"quartet {service}",
        lifespan=run,
        default_response_class=OrjsonResponse,
    )
    app.state.kit = kit
    app.state.settings = settings
    app.state.readiness_checks = kit.readiness
    app.state.dependency_checks = kit.dependencies
    app.state.facts = kit.facts
    app.state.draining = False
    app.state.ready_timeout_s = settings.READY_TIMEOUT_S
    install_handlers(app)
    app.include_router(health_router())
    for router in routers:
        app.include_router(router)

    if settings.INFLIGHT_LIMIT and kit.redis is not None:
        limiter_redis = kit.redis.owner(f"inflight:{service}")[1]
        limiter = InFlightLimiter(
            service,
            limiter_redis,
            cap=settings.INFLIGHT_LIMIT,
            lease_s=settings.INFLIGHT_LEASE_S,
            timeout_s=settings.INFLIGHT_TIMEOUT_S,
            backoff_s=settings.INFLIGHT_BACKOFF_S,
        )
        app.add_middleware(InFlightLimitMiddleware, limiter=limiter, exempt=QUIET_PATHS)
    Instrumentator(
        should_group_status_codes=False,
        excluded_handlers=[f"^{path}$" for path in QUIET_PATHS],
    ).add(*_http_metrics()).instrument(app).expose(app, include_in_schema=False)
    if settings.ADMISSION:
        # Outside the metrics and the in-flight cap: admission_middleware.py says why.
        app.add_middleware(
            AdmissionMiddleware,
            service=service,
            controller=AdaptiveLimit(
                min_limit=settings.ADMISSION_MIN_LIMIT,
                max_limit=settings.ADMISSION_MAX_LIMIT,
                tolerance=settings.ADMISSION_TOLERANCE,
                floor_s=settings.ADMISSION_FLOOR_MS / 1000,
                window_s=settings.ADMISSION_WINDOW_S,
                baseline_s=settings.ADMISSION_BASELINE_S,
                forget_s=settings.ADMISSION_FORGET_S,
            ),
            queue=QueueDelay(
                target_s=settings.ADMISSION_QUEUE_TARGET_MS / 1000,
                interval_s=settings.ADMISSION_QUEUE_INTERVAL_MS / 1000,
            ),
            exempt=ADMISSION_EXEMPT,
        )
    app.add_middleware(RequestContextMiddleware, access_log_enabled=settings.ACCESS_LOG)
    if tracer_provider is not None:
        # Around the whole stack, this one included: every log line of a request has its span.
        tracing.instrument_app(app, tracer_provider)
    return app
