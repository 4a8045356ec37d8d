"""The recommender: `gunicorn services.recommender.app:app`."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import cache

from fastapi import FastAPI

from services.common.app import Kit, create_app
from services.recommender.api import router
from services.recommender.cache import RecommendationCache
from services.recommender.recommending import MYSQL_ERRORS, Recommender
from services.recommender.scoring import ScoringRules
from services.recommender.settings import RecommenderSettings

SERVICE = "recommender"


@asynccontextmanager
async def _lifespan(app: FastAPI, kit: Kit) -> AsyncIterator[None]:
    settings = kit.settings
    assert isinstance(settings, RecommenderSettings)
    recommender = Recommender(
        kit.need_mysql(), ScoringRules(settings.WINDOW_DAYS, settings.HALF_LIFE_DAYS)
    )
    with contextlib.suppress(*MYSQL_ERRORS):
        await recommender.refresh_popularity()
    cache_ = RecommendationCache(
        kit.need_redis(),
        recommender.load,
        l1_size=settings.L1_SIZE,
        l1_ttl_s=settings.L1_TTL_S,
        l2_ttl_s=settings.L2_TTL_S,
        l2_keep_s=settings.L2_KEEP_S,
        lock_s=settings.LOAD_LOCK_S,
    )
    app.state.cache = cache_
    tasks = [
        asyncio.create_task(cache_.follow()),
        asyncio.create_task(recommender.keep_popularity_fresh(settings.POPULARITY_REFRESH_S)),
    ]
    try:
        yield
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def build_app(settings: RecommenderSettings | None = None) -> FastAPI:
    settings = settings or RecommenderSettings()
    return create_app(SERVICE, settings, routers=[router], lifespan=_lifespan, needs_mysql=True)


@cache
def _app() -> FastAPI:
    return build_app()


def __getattr__(name: str) -> FastAPI:
    # Built on first access, from the environment (see services/counter/app.py).
    if name == "app":
        return _app()
    raise AttributeError(name)
