"""The recommender's routes: each a call of the cache (answers, invalidation) or of the event
log (recording), and its answer."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Header, Path, Query
from pydantic import BaseModel, Field, StrictBool
from starlette.responses import Response

from services.common.auth import require_admin
from services.common.problems import BadInput, Unprocessable, problem_responses
from services.common.responses import OrjsonResponse
from services.common.state import StateSlot
from services.recommender.cache import RecommendationCache
from services.recommender.events import EventLog
from services.recommender.store import NewEvent


@dataclass(frozen=True)
class RecommenderState:
    """What the routes use, put there by the app's lifespan (app.py)."""

    cache: RecommendationCache
    events: EventLog
    batch_max: int  # RECOMMENDER_BATCH_MAX


STATE = StateSlot(RecommenderState)
State = Annotated[RecommenderState, Depends(STATE.of)]
router = APIRouter()
MAX_USER_ID = 2**63 - 1
UserId = Annotated[int, Path(ge=1, le=MAX_USER_ID, description="a positive integer")]


def _at_most(limit: int) -> str:
    """A regex for the decimal numbers 1..limit, ASCII digits, no leading zero."""
    digits = str(limit)
    shorter = f"[1-9][0-9]{{0,{len(digits) - 2}}}" if len(digits) > 1 else ""
    same_length = [
        f"{digits[:i]}[{int(i == 0)}-{int(d) - 1}][0-9]{{{len(digits) - i - 1}}}"
        for i, d in enumerate(digits)
        if int(d) > int(i == 0)
    ]
    return "(?:" + "|".join(filter(None, [shorter, *same_length, digits])) + ")"


# The batch's ids as the schema states them: ASCII digits only (str.isdigit() also takes '²' and
# '①', which int() refuses, and int() takes Arabic-Indic digits, which are not ids), 1..2^63-1,
# separated by commas, spaces around them allowed.
USER_ID_RE = _at_most(MAX_USER_ID)
USER_IDS_PATTERN = rf"^ *{USER_ID_RE} *(?:, *{USER_ID_RE} *)*$"
_USER_IDS = re.compile(USER_IDS_PATTERN)
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


AMOUNT_PATTERN = r"^(0|[1-9][0-9]{0,9})(\.[0-9]{1,2})?$"


class EventIn(BaseModel):
    type: Literal["search", "purchase"]
    category: str = Field(pattern=CATEGORY)
    query: str = Field("", max_length=255, description="search text (searches)")
    success: StrictBool = Field(True, description="whether the search found something (searches)")
    product_name: str = Field("", max_length=255, description="purchases")
    # The schema pydantic writes for a Decimal leaves out the two decimal places: stated here.
    amount: Decimal = Field(
        Decimal(0),
        ge=0,
        lt=Decimal("1e10"),
        decimal_places=2,
        json_schema_extra={
            "anyOf": [
                {"type": "number", "minimum": 0, "exclusiveMaximum": 1e10, "multipleOf": 0.01},
                {"type": "string", "pattern": AMOUNT_PATTERN},
            ]
        },
    )


class Recommendations(BaseModel):
    weightage: float
    search_weight: float
    purchase_weight: float
    recommended_categories: list[str]
    explore_categories: list[str]


class Activity(BaseModel):
    search_count: int
    purchase_count: int


class Recommendation(BaseModel):
    user_id: int
    recommendations: Recommendations
    metadata: Activity


class BatchResult(BaseModel):
    """A recommendation with its `cache`, or `{"user_id", "error": "unavailable"}`."""

    user_id: int
    recommendations: Recommendations | None = None
    metadata: Activity | None = None
    cache: str | None = None
    error: Literal["unavailable"] | None = None


class Batch(BaseModel):
    successful: int
    failed: int
    results: list[BatchResult]


class Accepted(BaseModel):
    status: Literal["accepted"]
    user_id: int


class Invalidated(BaseModel):
    status: Literal["invalidated"]
    user_id: int


@router.get("/recommend/{user_id}", responses={200: {"model": Recommendation}})
async def recommend(user_id: UserId, state: State) -> Response:
    body, source = await state.cache.get(user_id)
    return OrjsonResponse(body, headers={"X-Cache": source})


def _parse_ids(raw: str, limit: int) -> list[int]:
    if not _USER_IDS.fullmatch(raw):
        bad = next((p for p in raw.split(",") if not re.fullmatch(f" *{USER_ID_RE} *", p)), raw)
        raise Unprocessable(
            f"user_ids must be integers 1..2^63-1 (ASCII digits) separated by commas: {bad[:20]!r}"
        )
    ids = [int(part) for part in raw.split(",")]
    unique = list(dict.fromkeys(ids))  # duplicates folded, first-seen order kept
    if len(unique) > limit:
        raise BadInput(f"at most {limit} distinct user ids per batch, got {len(unique)}")
    return unique


@router.get("/batch-recommend", responses={**problem_responses(400), 200: {"model": Batch}})
async def batch_recommend(
    state: State,
    user_ids: Annotated[
        str,
        Query(
            min_length=1,
            max_length=4096,
            pattern=USER_IDS_PATTERN,
            description="e.g. 1,2,3: at most RECOMMENDER_BATCH_MAX (100) distinct ids (else 400)",
        ),
    ],
) -> Response:
    ids = _parse_ids(user_ids, state.batch_max)
    answers = await state.cache.get_many(ids)
    results: list[dict[str, object]] = []
    for user_id in ids:
        body, source = answers[user_id]
        if body is None:
            results.append({"user_id": user_id, "error": "unavailable"})
        else:
            results.append({**body, "cache": source})
    failed = sum(1 for r in results if "error" in r)
    return OrjsonResponse({"successful": len(ids) - failed, "failed": failed, "results": results})


def _as_recorded(user_id: int, event: EventIn) -> NewEvent:
    if event.type == "search":
        return NewEvent(
            user_id, "search", event.category, dt.datetime.now(dt.UTC), event.query, event.success
        )
    return NewEvent(
        user_id,
        "purchase",
        event.category,
        dt.datetime.now(dt.UTC),
        event.product_name,
        amount=event.amount.quantize(Decimal("0.01")),
    )


@router.post("/users/{user_id}/events", status_code=202, responses={202: {"model": Accepted}})
async def record_event(
    user_id: UserId,
    event: EventIn,
    state: State,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    replayed = await state.events.record(_as_recorded(user_id, event), idempotency_key)
    headers = {"Idempotent-Replayed": "true"} if replayed else None
    return OrjsonResponse(
        {"status": "accepted", "user_id": user_id}, status_code=202, headers=headers
    )


@router.post(
    "/invalidate-cache/{user_id}",
    dependencies=[Depends(require_admin)],
    responses={**problem_responses(401), 200: {"model": Invalidated}},
)
async def invalidate(user_id: UserId, state: State) -> Response:
    await state.cache.invalidate(user_id)
    return OrjsonResponse({"status": "invalidated", "user_id": user_id})
