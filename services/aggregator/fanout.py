"""The fan-out policies: how many calls, when, and when the answer is decided.

Each policy gets `call()` (one upstream call that returns an Outcome and never raises) and an
absolute deadline on the loop's clock. When the answer is decided every call still pending is
cancelled **and awaited**, so no task or pooled connection outlives the request. A failure never
"wins": first and smart wait on for a success until every call has failed or the deadline passed.

    all             3 calls; every one must finish in time and one at least succeed
    first           3 calls; the first success
    within-timeout  3 calls; the successes that arrived in time, possibly none (never an error)
    smart           1 call; 2 more if it has not succeeded within the hedge delay (or failed
                    before it); the first success of all three, the first call included
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from services.aggregator.upstream import Outcome
from services.common.problems import DeadlineExceeded, ServiceError

Call = Callable[[], Awaitable[Outcome]]
FANOUT = 3


class AllFailed(ServiceError):
    """Every call finished, none succeeded (502)."""

    status = 502


async def _settle(tasks: set[asyncio.Task[Outcome]]) -> None:
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def _remaining(deadline: float) -> float:
    return max(0.0, deadline - asyncio.get_running_loop().time())


def _start(call: Call, count: int) -> list[asyncio.Task[Outcome]]:
    return [asyncio.ensure_future(call()) for _ in range(count)]


async def fan_all(call: Call, deadline: float) -> list[Any]:
    tasks = _start(call, FANOUT)
    try:
        done, pending = await asyncio.wait(tasks, timeout=_remaining(deadline))
    finally:
        await _settle({t for t in tasks if not t.done()})
    # Only `done` has results: the pending calls are cancelled now. A call cut off by the
    # deadline itself did not finish in time either.
    late = len(pending) + sum(1 for t in done if t.result().kind == "timeout")
    if late:
        raise DeadlineExceeded(f"{late} of {FANOUT} calls did not finish in time")
    bodies = [t.result().body for t in tasks if t.result().ok]
    if not bodies:
        raise AllFailed(f"all {FANOUT} calls failed")
    return bodies


async def fan_within(call: Call, deadline: float) -> list[Any]:
    tasks = _start(call, FANOUT)
    arrived: list[Any] = []
    pending: set[asyncio.Task[Outcome]] = set(tasks)
    try:
        while pending:
            done, pending = await asyncio.wait(
                pending, timeout=_remaining(deadline), return_when=asyncio.FIRST_COMPLETED
            )
            if not done:
                break
            # In order of arrival; tasks finishing in the same loop step in call order.
            arrived += [t.result().body for t in tasks if t in done and t.result().ok]
    finally:
        await _settle(pending)
    return arrived


async def _first_success(
    pending: set[asyncio.Task[Outcome]], deadline: float, *, until: float | None = None
) -> tuple[Any | None, set[asyncio.Task[Outcome]], bool]:
    """Wait for a success until `until` (or the deadline). Returns (body or None, the calls
    still pending, whether the deadline cut a call off)."""
    cut_off = False
    stop = deadline if until is None else min(until, deadline)
    while pending:
        done, pending = await asyncio.wait(
            pending, timeout=_remaining(stop), return_when=asyncio.FIRST_COMPLETED
        )
        if not done:
            break
        for task in done:
            outcome = task.result()
            if outcome.ok:
                return outcome.body, pending, False
            cut_off = cut_off or outcome.kind == "timeout"
    return None, pending, cut_off or (bool(pending) and _remaining(deadline) == 0)


def _no_success(timed_out: bool) -> ServiceError:
    if timed_out:
        return DeadlineExceeded("no call succeeded in time")
    return AllFailed(f"all {FANOUT} calls failed")


async def fan_first(call: Call, deadline: float) -> Any:
    pending: set[asyncio.Task[Outcome]] = set(_start(call, FANOUT))
    try:
        body, pending, timed_out = await _first_success(pending, deadline)
    finally:
        await _settle(pending)
    if body is not None:
        return body
    raise _no_success(timed_out)


async def fan_smart(call: Call, deadline: float, hedge_s: float) -> Any:
    loop = asyncio.get_running_loop()
    pending: set[asyncio.Task[Outcome]] = set(_start(call, 1))
    try:
        # The first call alone, until it succeeds, fails, or the hedge delay passes.
        body, pending, timed_out = await _first_success(
            pending, deadline, until=loop.time() + hedge_s
        )
        if body is not None:
            return body
        if not timed_out and _remaining(deadline) > 0:
            # Two more; the first call, if still running, stays in the race.
            pending |= set(_start(call, FANOUT - 1))
            body, pending, timed_out = await _first_success(pending, deadline)
            if body is not None:
                return body
        else:
            timed_out = True
    finally:
        await _settle(pending)
    raise _no_success(timed_out)
