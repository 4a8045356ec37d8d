from __future__ import annotations

import datetime as dt
import hashlib
from decimal import Decimal
from typing import Annotated, Literal

import orjson
from fastapi import APIRouter, Depends, Header, Path, Query, Request
from pydantic import BaseModel, Field
from starlette.responses import Response

from services.common.auth import require_admin
from services.common.problems import BadInput, DependencyUnavailable, Unprocessable
from services.common.responses import OrjsonResponse
from services.recommender import store
from services.recommender.cache import RecommendationCache
from services.recommender.recommending import MYSQL_ERRORS

router = APIRouter()
UserId = Annotated[int, Path(ge=1, le=2**63 - 1, description="a positive integer")]
CATEGORY = r"^[A-Za-z0-9][A-Za-z0-9 &._-]{0,63}$"
# The client's name for one event (draft-ietf-httpapi-idempotency-key-header): visible ASCII,
# compared exactly, scoped to the user.
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        pattern=r"^[\x21-\x7e]{1,255}$",
        description="a retry with the same key is recorded once",
    ),
]


class EventIn(BaseModel):
    type: Literal["search", "purchase"]
    category: str = Field(pattern=CATEGORY)
    query: str = Field("", max_length=255, description="search text (searches)")
    success: bool = Field(True, description="whether the search found something (searches)")
    product_name: str = Field("", max_length=255, description="purchases")
    amount: Decimal = Field(Decimal(0), ge=0, lt=Decimal("1e10"), decimal_places=2)


def _cache(request: Request) -> RecommendationCache:
    cache: RecommendationCache = request.app.state.cache
    return cache


@router.get("/recommend/{user_id}")
async def recommend(user_id: UserId, request: Request) -> Response:
    body, source = await _cache(request).get(user_id)
    return OrjsonResponse(body, headers={"X-Cache": source})


def _parse_ids(raw: str, limit: int) -> list[int]:
    ids: list[int] = []
    for part in raw.split(","):
        part = part.strip()
        if not part.isdigit() or not 0 < int(part) < 2**63:
            raise Unprocessable(
                f"user_ids must be positive integers separated by commas: {part[:20]!r}"
            )
        ids.append(int(part))
    unique = list(dict.fromkeys(ids))  # duplicates folded, first-seen order kept
    if len(unique) > limit:
        raise BadInput(f"at most {limit} distinct user ids per batch, got {len(unique)}")
    return unique


@router.get("/batch-recommend")
async def batch_recommend(
    request: Request,
    user_ids: Annotated[str, Query(min_length=1, max_length=4096, description="e.g. 1,2,3")],
) -> Response:
    ids = _parse_ids(user_ids, request.app.state.settings.BATCH_MAX)
    answers = await _cache(request).get_many(ids)
    results: list[dict[str, object]] = []
    for user_id in ids:
        body, source = answers[user_id]
        if body is None:
            results.append({"user_id": user_id, "error": "unavailable"})
        else:
            results.append({**body, "cache": source})
    failed = sum(1 for r in results if "error" in r)
    return OrjsonResponse({"successful": len(ids) - failed, "failed": failed, "results": results})


def _as_recorded(user_id: int, event: EventIn) -> store.NewEvent:
    if event.type == "search":
        return store.NewEvent(
            user_id, "search", event.category, dt.datetime.now(dt.UTC), event.query, event.success
        )
    return store.NewEvent(
        user_id,
        "purchase",
        event.category,
        dt.datetime.now(dt.UTC),
        event.product_name,
        amount=event.amount.quantize(Decimal("0.01")),
    )


def _fingerprint(event: store.NewEvent) -> str:
    """What a retry must repeat: the event as it is stored, time aside (fields that do not apply
    to its type are ignored, like the insert ignores them)."""
    stored: tuple[object, ...] = (event.kind, event.category, event.text)
    stored += (event.success,) if event.kind == "search" else (str(event.amount),)
    return hashlib.sha256(orjson.dumps(stored)).hexdigest()


@router.post("/users/{user_id}/events", status_code=202)
async def record_event(
    user_id: UserId,
    event: EventIn,
    request: Request,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    pool = request.app.state.kit.need_mysql()
    new = _as_recorded(user_id, event)
    try:
        recorded = await store.record(pool, new, key=idempotency_key, fingerprint=_fingerprint(new))
    except MYSQL_ERRORS as exc:
        # Maybe recorded (the reply may be what was lost): a retry with the same key is safe.
        raise DependencyUnavailable(
            "the event may not have been recorded; retry it with the same Idempotency-Key"
        ) from exc
    if recorded == "key_reused":
        raise Unprocessable("this Idempotency-Key was already used for another event of this user")
    # Recorded: acknowledged whatever Redis does. An invalidation that cannot land now is
    # delivered later by this worker; a replay invalidates again, in case the first one's
    # worker died before delivering it.
    await _cache(request).invalidate_or_defer(user_id)
    headers = {"Idempotent-Replayed": "true"} if recorded == "replayed" else None
    return OrjsonResponse(
        {"status": "accepted", "user_id": user_id}, status_code=202, headers=headers
    )


@router.post("/invalidate-cache/{user_id}", dependencies=[Depends(require_admin)])
async def invalidate(user_id: UserId, request: Request) -> Response:
    await _cache(request).invalidate(user_id)
    return OrjsonResponse({"status": "invalidated", "user_id": user_id})
