"""The aggregator: `gunicorn services.aggregator.app:app`.

It stores nothing, so it has no store module: its only Redis use is the kit's cluster-wide
in-flight cap (AGGREGATOR_INFLIGHT_LIMIT, services/common/limiter.py), wired by create_app from
REDIS_SHARDS. Everything else it knows arrives over HTTP from the work server and its peers.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from services.aggregator.api import AGGREGATOR, AggregatorState, router
from services.aggregator.compose import Peers
from services.aggregator.settings import AggregatorSettings
from services.aggregator.upstream import Upstream, new_session
from services.common.app import Kit, create_app, lazy_app

SERVICE = "aggregator"


@asynccontextmanager
async def _lifespan(app: FastAPI, kit: Kit) -> AsyncIterator[None]:
    settings = kit.settings
    assert isinstance(settings, AggregatorSettings)
    # One session (one connection pool) per worker for every upstream.
    session = new_session(settings.POOL_SIZE)
    peers = Peers(
        counter=Upstream("counter", session),
        banner=Upstream("banner", session),
        recommender=Upstream("recommender", session),
        counter_url=str(settings.COUNTER_URL).rstrip("/"),
        banner_url=str(settings.BANNER_URL).rstrip("/"),
        recommender_url=str(settings.RECOMMENDER_URL).rstrip("/"),
    )
    work = Upstream("work", session)
    AGGREGATOR.put(app, AggregatorState(settings, work, str(settings.UPSTREAM_URL), peers))
    try:
        yield
    finally:
        await session.close()


def build_app(settings: AggregatorSettings | None = None) -> FastAPI:
    settings = settings or AggregatorSettings()
    return create_app(SERVICE, settings, routers=[router], lifespan=_lifespan)


__getattr__ = lazy_app(build_app)
