"""The aggregator's routes: the fan-out policies (fanout.py) and the page (compose.py)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel
from starlette.responses import Response

from services.aggregator import fanout
from services.aggregator.compose import Peers, compose
from services.aggregator.settings import AggregatorSettings
from services.aggregator.upstream import Outcome, Upstream
from services.common.logs import request_id_var
from services.common.page_id import PageId
from services.common.problems import MAXIMUM_SETTING, Unprocessable, problem, problem_responses
from services.common.requestctx import arrived_at
from services.common.responses import OrjsonResponse
from services.common.state import StateSlot


@dataclass(frozen=True)
class AggregatorState:
    """What the routes use, built by the app's lifespan (app.py) around one HTTP session."""

    settings: AggregatorSettings
    work: Upstream  # the fan-out's "work" server
    work_url: str
    peers: Peers  # the page's three services


router = APIRouter()
AGGREGATOR = StateSlot(AggregatorState)
State = Annotated[AggregatorState, Depends(AGGREGATOR.of)]
# The contract's parameter is `timeout`; the Python name says its unit. Its bound is the
# deployment's AGGREGATOR_MAX_TIMEOUT_MS, stated in the OpenAPI document (problems.py).
_TIMEOUT = {
    "gt": 0,
    "alias": "timeout",
    "description": "the caller's deadline in milliseconds, at most AGGREGATOR_MAX_TIMEOUT_MS",
    "json_schema_extra": {MAXIMUM_SETTING: "MAX_TIMEOUT_MS"},
}
Timeout = Annotated[int, Query(**_TIMEOUT)]
OptionalTimeout = Annotated[int | None, Query(**_TIMEOUT)]
# The fan-out's honest failures: every call failed (502), the deadline passed first (504).
FANOUT_ERRORS = problem_responses(502, 504)


class PageOut(BaseModel):
    """The parts that arrived (null for the others) and, per missing part, why."""

    page_id: str
    visits: dict[str, Any] | None
    banner: dict[str, Any] | None
    recommendations: dict[str, Any] | None
    errors: dict[str, str]


def _deadline(request: Request, state: AggregatorState, timeout_ms: int) -> float:
    """The caller's deadline on the loop's clock, counted from the request's arrival in this
    process: time spent before the handler (the in-flight cap's Redis call) is the caller's too."""
    limit = state.settings.MAX_TIMEOUT_MS
    if timeout_ms > limit:
        raise Unprocessable(f"timeout must be at most {limit} ms")
    return arrived_at(request.state) + timeout_ms / 1000


def _work(state: AggregatorState, deadline: float) -> Callable[[], Awaitable[Outcome]]:
    upstream, url = state.work, state.work_url
    request_id = request_id_var.get()
    headers = {"X-Request-ID": request_id} if request_id else None

    def call() -> Awaitable[Outcome]:
        return upstream.call("GET", url, deadline, headers=headers)

    return call


async def _run(
    request: Request,
    state: AggregatorState,
    timeout_ms: int,
    policy: Callable[..., Awaitable[Any]],
    *args: Any,
) -> Response:
    deadline = _deadline(request, state, timeout_ms)
    return OrjsonResponse(await policy(_work(state, deadline), deadline, *args))


@router.get("/api/all", responses={**FANOUT_ERRORS, 200: {"model": list[dict[str, Any]]}})
async def all_calls(request: Request, state: State, timeout_ms: Timeout) -> Response:
    return await _run(request, state, timeout_ms, fanout.fan_all)


@router.get("/api/first", responses={**FANOUT_ERRORS, 200: {"model": dict[str, Any]}})
async def first_call(request: Request, state: State, timeout_ms: Timeout) -> Response:
    return await _run(request, state, timeout_ms, fanout.fan_first)


@router.get(
    "/api/within-timeout", responses={**FANOUT_ERRORS, 200: {"model": list[dict[str, Any]]}}
)
async def within_timeout(request: Request, state: State, timeout_ms: Timeout) -> Response:
    return await _run(request, state, timeout_ms, fanout.fan_within)


@router.get("/api/smart", responses={**FANOUT_ERRORS, 200: {"model": dict[str, Any]}})
async def smart(request: Request, state: State, timeout_ms: OptionalTimeout = None) -> Response:
    settings = state.settings
    timeout_ms = timeout_ms or settings.MAX_TIMEOUT_MS
    return await _run(request, state, timeout_ms, fanout.fan_smart, settings.HEDGE_MS / 1000)


@router.get("/api/page/{page_id}", responses={**FANOUT_ERRORS, 200: {"model": PageOut}})
async def page(
    request: Request,
    state: State,
    page_id: PageId,
    campaign_id: Annotated[int | None, Query(ge=1, le=2**32 - 1)] = None,
    user_id: Annotated[int | None, Query(ge=1, le=2**63 - 1)] = None,
    timeout_ms: OptionalTimeout = None,
) -> Response:
    deadline = _deadline(request, state, timeout_ms or state.settings.PAGE_TIMEOUT_MS)
    composed = await compose(
        state.peers,
        page_id,
        campaign_id,
        user_id,
        cookie=request.headers.get("cookie"),
        request_id=request_id_var.get(),
        deadline=deadline,
    )
    if composed.parts_arrived:
        response: Response = OrjsonResponse(composed.body)
    else:
        status = 504 if "timeout" in composed.body["errors"].values() else 502
        response = problem(status, "no part of the page arrived", errors=composed.body["errors"])
    for value in composed.set_cookies:
        response.headers.append("set-cookie", value)
    return response
