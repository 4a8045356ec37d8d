"""Which banner a visitor sees: one of the campaign's set for the current quarter of the hour."""

from __future__ import annotations

import datetime as dt
import random

from services.banner.catalog import Catalog
from services.banner.metrics import PICKS
from services.banner.rules import BannerSet, quarter_of
from services.banner.visitors import Visitor

_pick = random.Random()  # not for secrets: a fair pick among a handful of banners


def current_set(catalog: Catalog, campaign_id: int, quarter: int | None = None) -> BannerSet | None:
    """The campaign's set in `quarter` (default: the current one), if it has one."""
    if quarter is None:
        quarter = quarter_of(dt.datetime.now(dt.UTC))
    return catalog.current(quarter, campaign_id)


def choose(banner_set: BannerSet, visitor: Visitor) -> int:
    """Uniform among the set, never the banner this visitor saw last (unless it is the only one);
    the visitor remembers it."""
    PICKS.labels(banner_set.rule).inc()
    last = visitor.last_banner(banner_set.campaign_id)
    choices = [b for b in banner_set.banners if b != last] or list(banner_set.banners)
    chosen = _pick.choice(choices)
    visitor.saw(banner_set.campaign_id, chosen)
    return chosen


def shuffled(banner_set: BannerSet) -> list[int]:
    """The set's banners in random order (docs/banner.md, the API table)."""
    banners = list(banner_set.banners)
    _pick.shuffle(banners)
    return banners
