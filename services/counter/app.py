"""The page visit counter: `gunicorn services.counter.app:app`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from services.common.app import Kit, create_app, lazy_app
from services.counter.api import COUNTER, router
from services.counter.counting import VisitCounter
from services.counter.settings import CounterSettings

SERVICE = "counter"


@asynccontextmanager
async def _lifespan(app: FastAPI, kit: Kit) -> AsyncIterator[None]:
    settings = kit.settings
    assert isinstance(settings, CounterSettings)
    counter = VisitCounter(settings, kit.need_redis(), kit.mysql)
    COUNTER.put(app, counter)
    kit.facts.update(ack=settings.ACK, flush_interval_s=settings.FLUSH_INTERVAL_S)
    counter.start()
    try:
        yield
    finally:
        await counter.stop()


def build_app(settings: CounterSettings | None = None) -> FastAPI:
    settings = settings or CounterSettings()
    if not settings.REDIS_SHARDS:
        raise ValueError("the counter needs REDIS_SHARDS")
    return create_app(SERVICE, settings, routers=[router], lifespan=_lifespan)


__getattr__ = lazy_app(build_app)
