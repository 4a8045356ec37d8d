"""The aggregator: `gunicorn services.aggregator.app:app`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from services.aggregator.api import router
from services.aggregator.compose import Peers
from services.aggregator.settings import AggregatorSettings
from services.aggregator.upstream import Upstream, new_session
from services.common.app import Kit, create_app, lazy_app

SERVICE = "aggregator"


@asynccontextmanager
async def _lifespan(app: FastAPI, kit: Kit) -> AsyncIterator[None]:
    settings = kit.settings
    assert isinstance(settings, AggregatorSettings)
    session = new_session(settings.POOL_SIZE)
    app.state.http = session
    app.state.work = Upstream("work", session)
    app.state.work_url = str(settings.UPSTREAM_URL)
    app.state.peers = Peers(
        counter=Upstream("counter", session),
        banner=Upstream("banner", session),
        recommender=Upstream("recommender", session),
        counter_url=str(settings.COUNTER_URL).rstrip("/"),
        banner_url=str(settings.BANNER_URL).rstrip("/"),
        recommender_url=str(settings.RECOMMENDER_URL).rstrip("/"),
    )
    try:
        yield
    finally:
        await session.close()


def build_app(settings: AggregatorSettings | None = None) -> FastAPI:
    settings = settings or AggregatorSettings()
    return create_app(SERVICE, settings, routers=[router], lifespan=_lifespan)


__getattr__ = lazy_app(build_app)
