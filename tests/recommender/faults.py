"""The fault helpers of the recommender's tests: the shared ones (tests/support/faults.py: a
program stalled or refused, the clock of an answer) under the names these tests use, and a poll."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from tests.support.faults import Timed, process_tree, program_pid, timed
from tests.support.faults import programs_refused as refused
from tests.support.faults import programs_stalled as stalled

__all__ = ["Timed", "process_tree", "program_pid", "refused", "stalled", "timed", "wait_until"]


async def wait_until(
    check: Callable[[], object | Awaitable[object]], timeout_s: float, what: str
) -> None:
    """Polls `check()` (sync or async, truthy when done) until it holds or the time is up."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = check()
        if isinstance(result, Awaitable):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout_s}s: {what}")
        await asyncio.sleep(0.1)
