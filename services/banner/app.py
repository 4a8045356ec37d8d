"""The banner service: `gunicorn services.banner.app:app`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from services.banner.api import BANNER, BannerState, router
from services.banner.catalog import SETS_CHANNEL, Catalog
from services.banner.giftcodes import GiftCodes
from services.banner.images import ImageStore
from services.banner.settings import BannerSettings
from services.banner.visitors import VisitorCookies
from services.common.app import Kit, background, create_app, lazy_app

SERVICE = "banner"


@asynccontextmanager
async def _lifespan(app: FastAPI, kit: Kit) -> AsyncIterator[None]:
    settings = kit.settings
    assert isinstance(settings, BannerSettings)
    shards, pool = kit.need_redis(), kit.need_mysql()
    catalog = Catalog(pool, check_interval_s=settings.SETS_CHECK_INTERVAL_S)
    await catalog.reload()
    # GiftCodes by this module's name: bench/giftcode_app.py swaps in another revision's.
    gift_codes = GiftCodes(shards, pool)
    cookies = VisitorCookies(
        settings.COOKIE_SECRET.get_secret_value(),
        max_age_s=settings.COOKIE_MAX_AGE_S,
        secure=settings.COOKIE_SECURE,
    )
    images = ImageStore(settings.IMAGES_DIR, cache_size=settings.IMAGE_CACHE_SIZE)
    BANNER.put(app, BannerState(catalog, images, cookies, gift_codes, settings.MAX_MINT))
    try:
        async with background(catalog.follow(shards.owner(SETS_CHANNEL)[1])):
            yield
    finally:
        # Its background cache writes and refills finish before the pools close.
        await gift_codes.close()


def build_app(settings: BannerSettings | None = None) -> FastAPI:
    settings = settings or BannerSettings()
    return create_app(SERVICE, settings, routers=[router], lifespan=_lifespan, needs_mysql=True)


__getattr__ = lazy_app(build_app)
