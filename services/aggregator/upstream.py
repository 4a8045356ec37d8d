"""One shared HTTP client per worker and what counts as a successful call.

aiohttp, chosen by measurement (docs/performance.md): of the clients tried it spends the least CPU
per call, and the fan-out's capacity is bounded by exactly that. One session per worker, opened and
closed with the app, with a connection pool sized by AGGREGATOR_POOL_SIZE. A call never raises for
an upstream failure: it returns an Outcome naming what went wrong, so the policies in fanout.py
only ever decide, never handle errors. The deadline is absolute and covers the wait for a pooled
connection, the request and reading the body.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Literal

import aiohttp
import orjson
from multidict import CIMultiDictProxy

from services.aggregator.metrics import CALLS, CANCELLED, IN_FLIGHT, LATENCY
from services.common import tracing

OutcomeKind = Literal["success", "http_error", "invalid_body", "timeout", "connect_error"]


@dataclass(frozen=True)
class Outcome:
    kind: OutcomeKind
    body: Any = None
    status: int | None = None
    headers: tuple[tuple[str, str], ...] = ()

    @property
    def ok(self) -> bool:
        return self.kind == "success"


def _judge(status: int, raw: bytes, *, ok_status: bool, shape: Callable[[Any], bool]) -> Outcome:
    if not ok_status:
        return Outcome("http_error", status=status)
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return Outcome("invalid_body", status=status)
    if not shape(body):
        return Outcome("invalid_body", status=status)
    return Outcome("success", body=body, status=status)


def _is_work(body: Any) -> bool:
    return (
        isinstance(body, dict)
        and set(body) == {"time"}
        and isinstance(body["time"], int)
        and not isinstance(body["time"], bool)
    )


def work_body(status: int, raw: bytes) -> Outcome:
    """The work server's contract: 200 with `{"time": <int>}`."""
    return _judge(status, raw, ok_status=status == 200, shape=_is_work)


def any_json(status: int, raw: bytes) -> Outcome:
    """A peer service: any 2xx JSON object."""
    return _judge(
        status, raw, ok_status=200 <= status < 300, shape=lambda body: isinstance(body, dict)
    )


def _with_headers(
    outcome: Outcome, received: CIMultiDictProxy[str], names: tuple[str, ...]
) -> Outcome:
    kept = tuple((name, value) for name in names for value in received.getall(name, ()))
    return replace(outcome, headers=kept) if kept else outcome


class Upstream:
    def __init__(self, name: str, session: aiohttp.ClientSession) -> None:
        self.name = name
        self.session = session
        self._calls = {kind: CALLS.labels(name, kind) for kind in OutcomeKind.__args__}  # type: ignore[attr-defined]
        self._latency = LATENCY.labels(name)
        self._in_flight = IN_FLIGHT.labels(name)
        self._cancelled = CANCELLED.labels(name)

    async def call(
        self,
        method: str,
        url: str,
        deadline: float,
        *,
        judge: Any = work_body,
        headers: dict[str, str] | None = None,
        keep_headers: tuple[str, ...] = (),
    ) -> Outcome:
        """One call that ends by `deadline` (loop time) at the latest; never raises on failure.

        `keep_headers` (lower case) are the response headers the caller reads, e.g. the banner's
        Set-Cookie; no other header is copied (the work fan-out needs none)."""
        started = time.perf_counter()
        self._in_flight.inc()
        try:
            async with asyncio.timeout_at(deadline):
                async with self.session.request(method, url, headers=headers) as response:
                    raw = await response.read()
                    outcome: Outcome = judge(response.status, raw)
                    if keep_headers:
                        outcome = _with_headers(outcome, response.headers, keep_headers)
        except TimeoutError:
            outcome = Outcome("timeout")
        except (aiohttp.ClientError, OSError):
            outcome = Outcome("connect_error")
        except asyncio.CancelledError:
            self._cancelled.inc()
            raise
        finally:
            self._in_flight.dec()
        self._calls[outcome.kind].inc()
        self._latency.observe(time.perf_counter() - started)
        return outcome


def new_session(pool_size: int) -> aiohttp.ClientSession:
    connector = aiohttp.TCPConnector(limit=pool_size, limit_per_host=pool_size, ttl_dns_cache=300)
    # No session-wide timeout: every call carries its own absolute deadline.
    return aiohttp.ClientSession(
        connector=connector,
        timeout=aiohttp.ClientTimeout(total=None),
        cookie_jar=aiohttp.DummyCookieJar(),
        skip_auto_headers=("User-Agent",),
        # Tracing on: a CLIENT span per call, and its `traceparent` sent with it (the page's
        # parts join the page's trace). Off: none.
        trace_configs=tracing.client_trace_configs(),
    )
