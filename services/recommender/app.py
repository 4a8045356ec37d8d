"""The recommender: `gunicorn services.recommender.app:app`."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from services.common.app import Kit, background, create_app, lazy_app
from services.common.store_errors import MYSQL_ERRORS
from services.recommender.api import STATE, RecommenderState, router
from services.recommender.cache import RecommendationCache
from services.recommender.events import EventLog
from services.recommender.recommending import Recommender
from services.recommender.retention import Retention
from services.recommender.scoring import ScoringRules
from services.recommender.settings import RecommenderSettings

SERVICE = "recommender"


@asynccontextmanager
async def _lifespan(app: FastAPI, kit: Kit) -> AsyncIterator[None]:
    settings = kit.settings
    assert isinstance(settings, RecommenderSettings)
    pool = kit.need_mysql()
    recommender = Recommender(
        pool,
        ScoringRules(settings.WINDOW_DAYS, settings.HALF_LIFE_DAYS),
        max_events=settings.MAX_EVENTS,
    )
    # Without MySQL now, the first refresh (POPULARITY_REFRESH_S later) fills it in.
    with contextlib.suppress(*MYSQL_ERRORS):
        await recommender.refresh_popularity()
    cache = RecommendationCache(
        kit.need_redis(),
        recommender.load,
        l1_size=settings.L1_SIZE,
        l1_ttl_s=settings.L1_TTL_S,
        l2_ttl_s=settings.L2_TTL_S,
        l2_keep_s=settings.L2_KEEP_S,
        lock_s=settings.LOAD_LOCK_S,
    )
    STATE.put(app, RecommenderState(cache, EventLog(pool, cache), settings.BATCH_MAX))
    retention = Retention(
        pool,
        settings.retention_days,
        batch=settings.RETENTION_BATCH,
        pause_s=settings.RETENTION_PAUSE_S,
        redis=kit.need_redis(),
    )
    async with background(
        cache.follow(),
        recommender.keep_popularity_fresh(settings.POPULARITY_REFRESH_S),
        retention.keep(settings.RETENTION_INTERVAL_S),
    ):
        yield


def build_app(settings: RecommenderSettings | None = None) -> FastAPI:
    settings = settings or RecommenderSettings()
    return create_app(SERVICE, settings, routers=[router], lifespan=_lifespan, needs_mysql=True)


__getattr__ = lazy_app(build_app)
