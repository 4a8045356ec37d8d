"""Recording a user's event: stored exactly once per idempotency key, then the user's cached
answers invalidated everywhere.

The event is acknowledged once MySQL has it, whatever Redis does: an invalidation that cannot
land now is delivered later by this worker (invalidation.py), and a replay invalidates again, in
case the first attempt's worker died before delivering it.
"""

from __future__ import annotations

import hashlib

import aiomysql
import orjson

from services.common.problems import DependencyUnavailable, Unprocessable
from services.common.store_errors import MYSQL_ERRORS
from services.recommender import store
from services.recommender.cache import RecommendationCache


def fingerprint(event: store.NewEvent) -> str:
    """What a retry must repeat: the event as it is stored, time aside (fields that do not apply
    to its type are ignored, like the insert ignores them)."""
    stored: tuple[object, ...] = (event.kind, event.category, event.text)
    stored += (event.success,) if event.kind == "search" else (str(event.amount),)
    return hashlib.sha256(orjson.dumps(stored)).hexdigest()


class EventLog:
    def __init__(self, pool: aiomysql.Pool, cache: RecommendationCache) -> None:
        self.pool = pool
        self.cache = cache

    async def record(self, event: store.NewEvent, key: str | None) -> bool:
        """Record the event; True when it was recorded before (a retry with the same key).
        Raises Unprocessable when the key names another event of the user's, and
        DependencyUnavailable when MySQL does not answer."""
        try:
            recorded = await store.record(self.pool, event, key=key, fingerprint=fingerprint(event))
        except MYSQL_ERRORS as exc:
            # Maybe recorded (the reply may be what was lost): a retry with the same key is safe.
            raise DependencyUnavailable(
                "the event may not have been recorded; retry it with the same Idempotency-Key"
            ) from exc
        if recorded == "key_reused":
            raise Unprocessable(
                "this Idempotency-Key was already used for another event of this user"
            )
        await self.cache.invalidate_or_defer(event.user_id)
        return recorded == "replayed"
