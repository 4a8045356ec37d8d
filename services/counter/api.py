from __future__ import annotations

import asyncio
import datetime as dt
from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query, Request
from pydantic import BaseModel
from starlette.responses import Response

from services.common.problems import DependencyUnavailable, problem_responses
from services.common.responses import OrjsonResponse
from services.counter import store
from services.counter.counting import MYSQL_ERRORS, VisitCounter
from services.counter.pages import PAGE_ID_PATTERN

router = APIRouter()
PageId = Annotated[
    str,
    Path(
        pattern=PAGE_ID_PATTERN,
        min_length=1,
        max_length=128,
        description="1..128 characters of [A-Za-z0-9._~-]",
    ),
]


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


def _counter(request: Request) -> VisitCounter:
    counter: VisitCounter = request.app.state.counter
    return counter


@router.post(
    "/visits/{page_id}",
    responses={
        200: {"model": VisitRecorded},
        202: {"model": VisitRecorded, "description": "queued: applied once Redis answers"},
    },
)
@router.post("/visit/{page_id}", include_in_schema=False)
async def record_visit(page_id: PageId, request: Request) -> Response:
    counter = _counter(request)
    waiter = counter.record(page_id)
    if waiter is not None:
        try:
            async with asyncio.timeout(counter.settings.COMMIT_TIMEOUT_S):
                await asyncio.shield(waiter)
        except TimeoutError:
            # Not lost: the increment stays queued and is applied once Redis answers. 202 says
            # exactly that, and a client that resends on 5xx would count the visit twice.
            return OrjsonResponse(
                {"status": "accepted", "message": f"Visit queued for page {page_id}"},
                status_code=202,
            )
    return OrjsonResponse({"status": "success", "message": f"Visit recorded for page {page_id}"})


@router.get("/visits/{page_id}", responses={200: {"model": Visits}})
async def read_visits(page_id: PageId, request: Request) -> Response:
    reading = await _counter(request).read(page_id)
    body: dict[str, object] = {"visits": reading.visits, "served_via": reading.served_via}
    if reading.degraded:
        body["degraded"] = True
    return OrjsonResponse(body)


@router.get(
    "/visits/{page_id}/daily", responses={**problem_responses(503), 200: {"model": DailyVisits}}
)
async def daily_visits(
    page_id: PageId,
    request: Request,
    days: Annotated[int, Query(ge=1, le=366, description="UTC days ending today")] = 7,
) -> Response:
    counter = _counter(request)
    if counter.mysql is None:
        raise DependencyUnavailable("the daily ledger needs MYSQL_DSN")
    today = dt.datetime.now(dt.UTC).date()
    since = today - dt.timedelta(days=days - 1)
    try:
        async with asyncio.timeout(counter.settings.DAILY_TIMEOUT_S):
            found = await store.daily_visits(counter.mysql, page_id, since)
    except MYSQL_ERRORS as exc:
        raise DependencyUnavailable("the daily ledger (MySQL) is not answering") from exc
    span = [since + dt.timedelta(days=i) for i in range(days)]
    series = [{"day": day.isoformat(), "visits": found.get(day, 0)} for day in span]
    return OrjsonResponse({"page_id": page_id, "days": series, "total": sum(found.values())})
