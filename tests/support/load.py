"""A small, fast HTTP load driver for tests (aiohttp: a fraction of httpx's CPU per request)."""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass, field

import aiohttp

from tests.support import refusals


@dataclass
class LoadResult:
    statuses: Counter[int] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    # Of the 503s, admission control's explicit refusals (tests/support/refusals.py): no work
    # done, the client asked to come back; counted apart so a test can tell them from failures.
    refused: int = 0

    @property
    def ok(self) -> int:
        return self.statuses[200]

    @property
    def only_served_or_refused(self) -> bool:
        """Every answer a 200 or an explicit refusal, and no transport error."""
        return not self.errors and self.ok + self.refused == self.statuses.total()


async def hammer(
    method: str,
    urls: list[str],
    *,
    concurrency: int,
    stop: asyncio.Event | None = None,
    result: LoadResult | None = None,
) -> LoadResult:
    """Send one request per URL over `concurrency` connections; collect statuses and errors
    (into `result` when given, so that a caller can watch the load's progress while it runs).

    A request that fails at the transport level (reset, refused) is counted under `errors`; it
    got no answer, so the caller must not count it as served.
    """
    result = LoadResult() if result is None else result
    queue = iter(urls)
    connector = aiohttp.TCPConnector(limit=concurrency, force_close=False)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def worker() -> None:
            for url in queue:
                if stop is not None and stop.is_set():
                    return
                try:
                    async with session.request(method, url) as response:
                        body = await response.read()
                        result.statuses[response.status] += 1
                        if refusals.is_refusal(response.status, response.headers, body):
                            result.refused += 1
                except (aiohttp.ClientError, TimeoutError) as exc:
                    result.errors[type(exc).__name__] += 1

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return result
