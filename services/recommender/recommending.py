"""Turns MySQL rows into recommendations: the cache's loader, and the periodic popularity."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Sequence

import aiomysql

from services.common.problems import DependencyUnavailable
from services.common.store_errors import MYSQL_ERRORS
from services.recommender import store
from services.recommender.scoring import ScoringRules, popularity_of, ranked, recommend_tallies

log = logging.getLogger(__name__)


class Recommender:
    def __init__(
        self, pool: aiomysql.Pool, rules: ScoringRules, max_events: int = store.MAX_EVENTS
    ) -> None:
        self.pool = pool
        self.rules = rules
        self.max_events = max_events
        self._popularity: dict[str, float] = {}
        self._popular: list[str] = []

    @property
    def popularity(self) -> dict[str, float]:
        return self._popularity

    @popularity.setter
    def popularity(self, scores: dict[str, float]) -> None:
        # Ranked here, once per refresh: every miss's explore list reads the ranking.
        self._popularity = scores
        self._popular = ranked(scores)

    def _window_start(self, now: dt.datetime) -> dt.datetime:
        # MySQL holds naive UTC times.
        return (now - dt.timedelta(days=self.rules.window_days)).replace(tzinfo=None)

    async def load(
        self, user_ids: Sequence[int], timeout_s: float = store.QUERY_TIMEOUT_S
    ) -> dict[int, dict[str, object]]:
        """The users' answers, from one query that ends by `timeout_s`."""
        return await self.answers(user_ids, dt.datetime.now(dt.UTC), timeout_s)

    async def answers(
        self, user_ids: Sequence[int], now: dt.datetime, timeout_s: float = store.QUERY_TIMEOUT_S
    ) -> dict[int, dict[str, object]]:
        """The users' answers as of `now`."""
        try:
            tallies = await store.events_of(
                self.pool,
                user_ids,
                self._window_start(now),
                now,
                timeout_s=timeout_s,
                max_events=self.max_events,
            )
        except MYSQL_ERRORS as exc:
            raise DependencyUnavailable("MySQL is not answering") from exc
        return {
            user_id: recommend_tallies(user_id, tallies.get(user_id, []), self._popular, self.rules)
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
