"""The counter's routes: each one call of the VisitCounter (counting.py) and its answer."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel
from starlette.responses import Response

from services.common.page_id import PageId
from services.common.prefer import RETURN_REPRESENTATION, says_return_representation
from services.common.problems import problem_responses
from services.common.responses import OrjsonResponse
from services.common.state import StateSlot
from services.counter.counting import Reading, VisitCounter

router = APIRouter()
# The one object the routes use, put there by the app's lifespan (app.py).
COUNTER = StateSlot(VisitCounter)
Counter = Annotated[VisitCounter, Depends(COUNTER.of)]


# The documented answers (the routes build their bodies themselves, for speed).
class VisitRecorded(BaseModel):
    status: Literal["success", "accepted"]
    message: str


class Visits(BaseModel):
    visits: int
    served_via: str
    degraded: bool = False


class DailyCount(BaseModel):
    day: dt.date
    visits: int


class DailyVisits(BaseModel):
    page_id: str
    days: list[DailyCount]
    total: int


@router.post(
    "/visits/{page_id}",
    responses={
        200: {
            "model": VisitRecorded | Visits,
            "description": "recorded; with an RFC 7240 `Prefer: return=representation` header, "
            "the page's count (as GET answers it, this visit included) and `Preference-Applied`",
        },
        202: {"model": VisitRecorded | Visits, "description": "queued: applied once Redis answers"},
    },
)
@router.post("/visit/{page_id}", include_in_schema=False)
async def record_visit(page_id: PageId, counter: Counter, request: Request) -> Response:
    recorded = await counter.count(page_id)
    status = 200 if recorded else 202
    # Read from the request, not declared as a parameter: RFC 7240 has a server ignore a
    # preference it cannot parse, where a declared header would be validated and refused.
    prefer = request.headers.getlist("prefer")
    if prefer and says_return_representation(prefer):
        # Read after recording, in this process: its buffer holds the visit until it is flushed,
        # so the count includes it whichever instance a later GET would have reached.
        return OrjsonResponse(
            _visits_body(await counter.read(page_id)),
            status_code=status,
            headers={
                "Preference-Applied": RETURN_REPRESENTATION,
                "Content-Location": f"/visits/{page_id}",
            },
        )
    if recorded:
        return OrjsonResponse(
            {"status": "success", "message": f"Visit recorded for page {page_id}"}
        )
    return OrjsonResponse(
        {"status": "accepted", "message": f"Visit queued for page {page_id}"}, status_code=202
    )


def _visits_body(reading: Reading) -> dict[str, object]:
    body: dict[str, object] = {"visits": reading.visits, "served_via": reading.served_via}
    if reading.degraded:
        body["degraded"] = True
    return body


@router.get("/visits/{page_id}", responses={200: {"model": Visits}})
async def read_visits(page_id: PageId, counter: Counter) -> Response:
    return OrjsonResponse(_visits_body(await counter.read(page_id)))


@router.get(
    "/visits/{page_id}/daily", responses={**problem_responses(503), 200: {"model": DailyVisits}}
)
async def daily_visits(
    page_id: PageId,
    counter: Counter,
    days: Annotated[int, Query(ge=1, le=366, description="UTC days ending today")] = 7,
) -> Response:
    daily = await counter.daily(page_id, days)
    series = [{"day": day.isoformat(), "visits": visits} for day, visits in daily.days]
    return OrjsonResponse({"page_id": page_id, "days": series, "total": daily.total})
