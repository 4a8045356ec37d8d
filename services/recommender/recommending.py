"""Turns MySQL rows into recommendations: the cache's loader, and the periodic popularity."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Sequence

import aiomysql

from services.common.problems import DependencyUnavailable
from services.recommender import store
from services.recommender.scoring import ScoringRules, popularity_of, recommend

log = logging.getLogger(__name__)
MYSQL_ERRORS = (aiomysql.Error, OSError, TimeoutError)


class Recommender:
    def __init__(self, pool: aiomysql.Pool, rules: ScoringRules) -> None:
        self.pool = pool
        self.rules = rules
        self.popularity: dict[str, float] = {}

    def _window_start(self, now: dt.datetime) -> dt.datetime:
        # MySQL holds naive UTC times.
        return (now - dt.timedelta(days=self.rules.window_days)).replace(tzinfo=None)

    async def load(
        self, user_ids: Sequence[int], timeout_s: float = store.QUERY_TIMEOUT_S
    ) -> dict[int, dict[str, object]]:
        """The users' answers, from one query that ends by `timeout_s`."""
        now = dt.datetime.now(dt.UTC)
        try:
            events = await store.events_of(
                self.pool, user_ids, self._window_start(now), timeout_s=timeout_s
            )
        except MYSQL_ERRORS as exc:
            raise DependencyUnavailable("MySQL is not answering") from exc
        return {
            user_id: recommend(user_id, events.get(user_id, []), self.popularity, self.rules, now)
            for user_id in user_ids
        }

    async def refresh_popularity(self) -> None:
        now = dt.datetime.now(dt.UTC)
        counts = await store.popularity_counts(self.pool, self._window_start(now))
        self.popularity = popularity_of(counts)

    async def keep_popularity_fresh(self, every_s: float) -> None:
        while True:
            await asyncio.sleep(every_s)
            try:
                await self.refresh_popularity()
            except MYSQL_ERRORS as exc:
                log.warning(
                    "popularity refresh failed; keeping the last one", extra={"error": repr(exc)}
                )
