"""The load of a chaos run: every public feature at once, through the gateway.

It goes to the gateway's internal listener (the same routes as the public one, without the
per-client limits, which would otherwise answer most of one client's load with 429). Each actor is
a loop bounded by the run's stop event and by a request budget. Every answer is tallied by
endpoint and kind ("200", "503", ..., "refused", "no answer"), with its latency; "refused" is
admission control's 503 (a worker's, or the gateway's with no instance to try: told by the
problem's detail), which says the cluster is over capacity, not that a feature failed, and is
documented for every endpoint (docs/reliability.md, "Admission control"). What the invariants
need is
kept on the side: the visits acknowledged per page, the code each visitor was given, the events
acknowledged per idempotency key.

A client that gets no answer or a 5xx retries what is safe to retry: a gift-code claim with the
same visitor cookie and an event with the same idempotency key (both idempotent by design); never
a visit, which a retry would count twice.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson
from multidict import CIMultiDictProxy

from cluster.gateway_files import ROOT
from services.banner.visitors import COOKIE
from services.common.admission_middleware import REFUSAL_DETAIL

# Admission control's refusals: a worker's, and the gateway's page when no instance can be tried.
REFUSALS = frozenset(
    {REFUSAL_DETAIL, orjson.loads((ROOT / "nginx" / "_errors" / "503.json").read_bytes())["detail"]}
)

# What a client may see besides 2xx/4xx, per endpoint, and why: docs/reliability.md has the
# same table. Anything else (a 500 above all) breaks the run.
DOCUMENTED_5XX: dict[str, dict[int, str]] = {
    "POST /visits": {
        502: "the instance was SIGKILLed with the POST in flight (nginx never resends a POST)",
        503: "the page's shard buffer (or the ledger backlog) is full while its store is down",
    },
    "GET /visits": {},
    "GET banner": {},
    "POST gift-code": {
        502: "the instance was SIGKILLed with the claim in flight; the retry gets the same code",
        503: "MySQL or the campaign's shard did not answer in time; the retry gets the same code",
    },
    "GET recommend": {
        503: "an uncached user while MySQL does not answer",
    },
    "POST events": {
        502: "the instance was SIGKILLed with the event in flight; the retry is deduplicated",
        503: "MySQL did not answer in time; the retry with the same key is deduplicated",
    },
    "GET page": {
        502: "no part of the page arrived (every part failed)",
        504: "no part of the page arrived in time",
    },
    "GET smart": {
        502: "every call failed",
        504: "no call succeeded in time",
    },
}
CLIENT_TIMEOUT_S = 15.0  # far above every documented bound: a request this slow is "hung"
RETRIES = 3
SLOW_S = 1.0


@dataclass
class PageTally:
    acked: int = 0  # 200: counted (commit mode: in Redis; batch mode: buffered)
    queued: int = 0  # 202 (commit mode): queued, not yet in Redis
    unknown: int = 0  # no answer or 502: may or may not have been counted
    refused: int = 0  # 503: not counted


@dataclass
class Tally:
    answers: Counter[tuple[str, str]] = field(default_factory=Counter)
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    pages: dict[str, PageTally] = field(default_factory=lambda: defaultdict(PageTally))
    # visitor id -> every code it was answered with (must be one)
    codes: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    claims_gave_up: int = 0
    events_acked: set[str] = field(default_factory=set)
    events_sent: set[str] = field(default_factory=set)
    events_gave_up: int = 0
    requests: int = 0
    # The slowest answers with when they started (monotonic), to set beside the faults.
    slow: list[tuple[float, str, str, float]] = field(default_factory=list)

    def note(self, endpoint: str, kind: str, seconds: float) -> None:
        self.answers[(endpoint, kind)] += 1
        self.latencies[endpoint].append(seconds)
        if seconds > SLOW_S and len(self.slow) < 500:
            self.slow.append((time.monotonic() - seconds, endpoint, kind, seconds))


@dataclass
class Traffic:
    base: str
    admin_token: str
    pages: list[str]
    campaigns: list[int]
    gift_campaign: int
    users: int
    seed: int
    budget: int = 500_000
    tally: Tally = field(default_factory=Tally)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        self.run_id = uuid.uuid4().hex[:8]

    async def _call(
        self,
        session: aiohttp.ClientSession,
        endpoint: str,
        method: str,
        path: str,
        **kwargs: Any,
    ) -> tuple[int | None, Any, CIMultiDictProxy[str] | None]:
        """One request: (status or None for no answer, JSON body or None, response headers)."""
        self.tally.requests += 1
        started = time.perf_counter()
        try:
            async with session.request(method, self.base + path, **kwargs) as response:
                raw = await response.read()
                status = response.status
                headers = response.headers
        except (aiohttp.ClientError, TimeoutError):
            self.tally.note(endpoint, "no answer", time.perf_counter() - started)
            return None, None, None
        seconds = time.perf_counter() - started
        body: Any = None
        if raw[:1] in (b"{", b"["):
            try:
                body = orjson.loads(raw)
            except orjson.JSONDecodeError:
                body = None
        refused = (
            status == 503
            and "Retry-After" in headers
            and isinstance(body, dict)
            and body.get("detail") in REFUSALS
        )
        self.tally.note(endpoint, "refused" if refused else str(status), seconds)
        return status, body, headers

    def _spent(self, stop: asyncio.Event) -> bool:
        return stop.is_set() or self.tally.requests >= self.budget

    # --- the actors ---------------------------------------------------------------------

    async def visits_writer(self, session: aiohttp.ClientSession, stop: asyncio.Event) -> None:
        while not self._spent(stop):
            page = self.rng.choice(self.pages)
            status, _, _ = await self._call(session, "POST /visits", "POST", f"/visits/{page}")
            tally = self.tally.pages[page]
            if status == 200:
                tally.acked += 1
            elif status == 202:
                tally.queued += 1
            elif status == 503:
                tally.refused += 1
            else:
                tally.unknown += 1

    async def visits_reader(self, session: aiohttp.ClientSession, stop: asyncio.Event) -> None:
        while not self._spent(stop):
            page = self.rng.choice(self.pages)
            await self._call(session, "GET /visits", "GET", f"/visits/{page}")

    async def banner_viewer(self, session: aiohttp.ClientSession, stop: asyncio.Event) -> None:
        cookie: str | None = None
        while not self._spent(stop):
            campaign = self.rng.choice(self.campaigns)
            headers = {"Cookie": f"{COOKIE}={cookie}"} if cookie else {}
            _, _, answered = await self._call(
                session, "GET banner", "GET", f"/api/campaigns/{campaign}/banner", headers=headers
            )
            cookie = _cookie(answered) or cookie

    async def claimer(self, session: aiohttp.ClientSession, stop: asyncio.Event) -> None:
        path = f"/api/campaigns/{self.gift_campaign}/gift-code"
        while not self._spent(stop):
            # A new visitor: its cookie comes with its first banner.
            _, _, answered = await self._call(
                session, "GET banner", "GET", f"/api/campaigns/{self.gift_campaign}/banner"
            )
            cookie = _cookie(answered)
            if cookie is None:
                continue
            visitor = cookie.split("~", 1)[0]
            for attempt in range(RETRIES + 1):
                status, body, _ = await self._call(
                    session,
                    "POST gift-code",
                    "POST",
                    path,
                    headers={"Cookie": f"{COOKIE}={cookie}"},
                )
                if status == 200 and isinstance(body, dict):
                    self.tally.codes[visitor].add(str(body["code"]))
                    # The same visitor asking again must get the same code.
                    if self.rng.random() < 0.2:
                        continue
                    break
                if status is not None and status < 500:
                    break  # 410: the pool is empty; 4xx: not retried
                if attempt == RETRIES:
                    self.tally.claims_gave_up += 1
                await asyncio.sleep(0.2 * (attempt + 1))

    async def recommender_reader(self, session: aiohttp.ClientSession, stop: asyncio.Event) -> None:
        while not self._spent(stop):
            user = self.rng.randint(1, self.users)
            await self._call(session, "GET recommend", "GET", f"/recommend/{user}")

    async def event_writer(self, session: aiohttp.ClientSession, stop: asyncio.Event) -> None:
        while not self._spent(stop):
            user = self.rng.randint(1, self.users)
            key = f"chaos-{self.run_id}-{uuid.uuid4().hex}"
            self.tally.events_sent.add(key)
            # The key is also the search text: the invariant finds each event by it.
            event = {"type": "search", "category": "chaos", "query": key}
            for attempt in range(RETRIES + 1):
                status, _, _ = await self._call(
                    session,
                    "POST events",
                    "POST",
                    f"/users/{user}/events",
                    json=event,
                    headers={"Idempotency-Key": key},
                )
                if status == 202:
                    self.tally.events_acked.add(key)
                    break
                if status is not None and status < 500:
                    break
                if attempt == RETRIES:
                    self.tally.events_gave_up += 1
                await asyncio.sleep(0.2 * (attempt + 1))

    async def page_reader(self, session: aiohttp.ClientSession, stop: asyncio.Event) -> None:
        while not self._spent(stop):
            page = f"chaos-read-{self.rng.randint(1, 50)}"
            campaign = self.rng.choice(self.campaigns)
            user = self.rng.randint(1, self.users)
            query = f"campaign_id={campaign}&user_id={user}&timeout=300"
            await self._call(session, "GET page", "GET", f"/api/page/{page}?{query}")

    async def fanout_reader(self, session: aiohttp.ClientSession, stop: asyncio.Event) -> None:
        while not self._spent(stop):
            await self._call(session, "GET smart", "GET", "/api/smart?timeout=400")

    async def mint(self, session: aiohttp.ClientSession, count: int) -> None:
        status, body, _ = await self._call(
            session,
            "POST mint",
            "POST",
            f"/api/campaigns/{self.gift_campaign}/gift-codes",
            json={"count": count},
            headers={"Authorization": f"Bearer {self.admin_token}"},
        )
        if status != 201:
            raise RuntimeError(f"minting gift codes failed: {status} {body}")

    async def run(self, stop: asyncio.Event, *, workers: int, mint: int) -> None:
        connector = aiohttp.TCPConnector(limit=0)
        timeout = aiohttp.ClientTimeout(total=CLIENT_TIMEOUT_S)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
            await self.mint(session, mint)
            actors = [
                (self.visits_writer, 2 * workers),
                (self.visits_reader, workers),
                (self.banner_viewer, workers),
                (self.claimer, workers),
                (self.recommender_reader, workers),
                (self.event_writer, workers),
                (self.page_reader, workers),
                (self.fanout_reader, max(1, workers // 2)),
            ]
            await asyncio.gather(
                *(actor(session, stop) for actor, count in actors for _ in range(count))
            )


def _cookie(headers: CIMultiDictProxy[str] | None) -> str | None:
    """The visitor cookie a response sets, if it sets one."""
    if headers is None:
        return None
    for value in headers.getall("Set-Cookie", []):
        name, _, rest = value.partition("=")
        if name.strip() == COOKIE:
            return rest.split(";", 1)[0]
    return None
