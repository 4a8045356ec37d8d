"""Waiting for a condition under a deadline, instead of sleeping a guessed time: a test that polls
is as fast as the system it watches, and says what it waited for when the deadline passes."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


async def wait_until(
    check: Callable[[], object | Awaitable[object]],
    timeout_s: float,
    what: str,
    interval_s: float = 0.1,
) -> None:
    """Calls `check()` (sync or async; truthy when done) until it holds; AssertionError naming
    `what` once `timeout_s` passes. A blocking check stalls the loop for its own duration only."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = check()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout_s} s: {what}")
        await asyncio.sleep(interval_s)


async def settled(
    probe: Callable[[], T], ok: Callable[[T], bool], timeout_s: float, interval_s: float = 0.2
) -> T:
    """probe() (blocking, so in a thread) until ok(value) or the deadline; the last value, for the
    caller to assert on, so that a failure shows what the value was rather than a timeout."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = await asyncio.to_thread(probe)
        if ok(value) or time.monotonic() > deadline:
            return value
        await asyncio.sleep(interval_s)


def wait_until_blocking(
    check: Callable[[], object], timeout_s: float, what: str, interval_s: float = 0.1
) -> None:
    """wait_until for synchronous tests."""
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout_s} s: {what}")
        time.sleep(interval_s)
