"""L1: each worker's own bounded copy of recent answers (`X-Cache: HIT-L1`).

An LRU with a TTL (cachetools), at most RECOMMENDER_L1_SIZE answers, and beside it the users
invalidated recently (at most INVALIDATED_MAX), so that a load which raced an invalidation this
worker saw does not put its stale answer back.
"""

from __future__ import annotations

import time
from typing import Any

from cachetools import TTLCache

from services.recommender.metrics import L1_ENTRIES

Body = dict[str, Any]
# Users whose recent invalidation a worker remembers (so a load that raced it is not kept in L1).
INVALIDATED_MAX = 100_000
# How long one is remembered: far longer than any load may take (the MySQL budget is seconds).
INVALIDATED_TTL_S = 60


class LocalCache:
    def __init__(self, size: int, ttl_s: float) -> None:
        self._answers: TTLCache[int, Body] = TTLCache(maxsize=size, ttl=ttl_s)
        # user -> monotonic time of the last invalidation this worker saw
        self._invalidated: TTLCache[int, float] = TTLCache(
            maxsize=INVALIDATED_MAX, ttl=INVALIDATED_TTL_S
        )

    def get(self, user_id: int) -> Body | None:
        return self._answers.get(user_id)

    def keep(self, user_id: int, body: Body, started: float) -> None:
        """Keep an answer loaded since `started` (monotonic), unless the user was invalidated
        since: the answer may predate the change."""
        invalidated = self._invalidated.get(user_id)
        if invalidated is None or invalidated < started:
            self._answers[user_id] = body
            L1_ENTRIES.set(len(self._answers))

    def drop(self, user_id: int) -> None:
        self._invalidated[user_id] = time.monotonic()
        self._answers.pop(user_id, None)
        L1_ENTRIES.set(len(self._answers))

    def clear(self) -> None:
        self._answers.clear()
        L1_ENTRIES.set(0)

    def __len__(self) -> int:
        return len(self._answers)
