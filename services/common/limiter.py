"""A cluster-wide cap on the requests a service has in flight, shared through Redis.

The slots live in one sorted set per service, one member per slot, scored by its lease's expiry in
milliseconds of the Redis server's own clock (`TIME`), so workers on machines with skewed clocks
agree. A worker does not take a slot per request: it leases a block of them (inflight_block.py
decides how many) and admits requests against the block locally, so a round trip to Redis is paid
once per block, not twice per request. One Lua script does every exchange (grow, shrink, renew,
return): it prunes expired leases, replaces this worker's members and grants what fits under the
cap, so the sum of all blocks never exceeds it. A block is renewed before its lease ends while the
worker holds it, and given back when the worker idles or is shut down; a worker killed mid-request
(OOM, SIGKILL) leaks its block for at most the lease.

When Redis cannot be reached the limiter fails open: the request is served, a warning is logged
(at most every 10 s per process) and `<service>_inflight_limiter_errors_total` counts the failed
call. A cap that takes the service down with it when Redis blinks would do more harm than the
overload it guards against; the gateway's own per-client limits still hold.

The limiter never makes a request late: each call to Redis is bounded by INFLIGHT_TIMEOUT_S (a
few milliseconds when the shard is healthy, so the default 50 ms is far above normal), the requests
that wait for more slots share one call, and after a failure the process stops asking for
INFLIGHT_BACKOFF_S, serving uncapped meanwhile. A stalled shard (SIGSTOP: connections accepted,
never answered) therefore costs at most one bounded wait to the requests that were waiting for
slots when it stalled, then nothing until the next probe.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import enum
import logging
import os
import time
import uuid
from dataclasses import dataclass
from functools import cache

from prometheus_client import Counter, Gauge
from redis.asyncio import Redis
from redis.exceptions import RedisError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.common.inflight_block import Ask, Block, step_for
from services.common.problems import problem
from services.common.throttled_log import ThrottledWarnings

log = logging.getLogger(__name__)

# KEYS[1] the slots, KEYS[2] the mark that someone was refused lately, KEYS[3] the workers that
# need slots (scored by expiry). ARGV: cap, lease_ms, owner, upto, in_use, need, spare,
# contention_ms. Returns {granted, held, contended}. Members are "<owner>#<i>", i < granted: an
# exchange removes the owner's first `upto` and adds the grant back, in batches unpack() can take.
_EXCHANGE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local cap, lease = tonumber(ARGV[1]), tonumber(ARGV[2])
local owner, upto = ARGV[3], tonumber(ARGV[4])
local in_use, need, spare = tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local batch = {}
for i = 0, upto - 1 do
  batch[#batch + 1] = owner .. '#' .. i
  if #batch == 256 or i == upto - 1 then
    redis.call('ZREM', KEYS[1], unpack(batch))
    batch = {}
  end
end
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now)
if need > 0 then
  redis.call('ZADD', KEYS[3], now + lease, owner)
  redis.call('PEXPIRE', KEYS[3], lease)
else
  redis.call('ZREM', KEYS[3], owner)
end
local room = cap - redis.call('ZCARD', KEYS[1])
local contended = redis.call('EXISTS', KEYS[2]) == 1
local want
if contended then
  -- No spare, and no growth beyond a fair share of the cap among the workers that need slots.
  want = math.min(need, math.ceil(cap / math.max(1, redis.call('ZCARD', KEYS[3]))))
else
  -- Never more than half the free room as spare: the others may need the rest.
  want = need + math.max(0, math.min(spare, math.floor((room - need) / 2)))
end
-- Slots in use are kept whatever the share: dropping them would let others exceed the cap.
local grant = math.max(0, math.min(in_use, room), math.min(want, room))
if grant < need then
  redis.call('SET', KEYS[2], '1', 'PX', ARGV[8])
  contended = true
end
local expiry = now + lease
for i = 0, grant - 1 do
  batch[#batch + 1] = expiry
  batch[#batch + 1] = owner .. '#' .. i
  if #batch == 512 or i == grant - 1 then
    redis.call('ZADD', KEYS[1], unpack(batch))
    batch = {}
  end
end
if grant > 0 then redis.call('PEXPIRE', KEYS[1], lease) end
return {grant, cap - room + grant, contended and 1 or 0}
"""

# How often a held block is renewed (and an idle one given back): three times per lease, and at
# least every second, so idle spare returns to the others quickly.
_RENEW_MAX_S = 1.0


class Slot(enum.Enum):
    HELD = "held"  # one of this worker's leased slots
    UNCAPPED = "uncapped"  # served without the cap: Redis did not answer (fail open)


@dataclass(frozen=True)
class _Metrics:
    occupancy: Gauge
    errors: Counter
    rejected: Counter


@cache
def _metrics(service: str) -> _Metrics:
    # One set per process and service: limiters built again (tests, reloads) share them.
    return _Metrics(
        occupancy=Gauge(
            f"{service}_inflight_requests",
            "Slots the service's workers hold across the cluster (in use or leased spare), "
            "as of this worker's last exchange with Redis",
            multiprocess_mode="livemax",
        ),
        errors=Counter(
            f"{service}_inflight_limiter_errors",
            "Limiter calls that failed (Redis unreachable); the requests were served anyway",
        ),
        rejected=Counter(
            f"{service}_inflight_rejected", "Requests refused because the service was at its cap"
        ),
    )


class InFlightLimiter:
    def __init__(
        self,
        service: str,
        redis: Redis,
        *,
        cap: int,
        lease_s: float,
        timeout_s: float = 0.05,
        backoff_s: float = 1.0,
    ) -> None:
        if cap < 1:
            raise ValueError("cap must be at least 1")
        self.key = f"inflight:{service}"
        self.cap = cap
        self.lease_s = lease_s
        self.timeout_s = timeout_s
        self.backoff_s = backoff_s
        self.renew_s = min(lease_s / 3, _RENEW_MAX_S)
        # A refusal is remembered for two renewals, so every holder sees it at its next one.
        self._contention_ms = max(1, int(2 * self.renew_s * 1000))
        self._contended_key = f"{self.key}:contended"
        self._needing_key = f"{self.key}:needing"
        self._exchange_script = redis.register_script(_EXCHANGE)
        self.metrics = _metrics(service)
        self._warnings = ThrottledWarnings(log)
        self._skip_until = 0.0
        self._block = Block(step=step_for(cap))
        self._exchanges = 0  # exchanges started, numbering them
        self._exchanging: asyncio.Task[tuple[int, bool]] | None = None
        # Requests waiting for an exchange, answered by it in arrival order.
        self._waiters: collections.deque[asyncio.Future[Slot | None]] = collections.deque()
        self._renewing: asyncio.Task[None] | None = None
        self._owner_pid = -1
        self._owner_id = ""

    @property
    def bypassed(self) -> bool:
        """True while failing open after a recent failure: the request is served uncapped."""
        return time.monotonic() < self._skip_until

    async def acquire(self) -> Slot | None:
        """A slot (held, or uncapped while Redis fails), or None when the service is at its cap."""
        now = time.monotonic()  # one clock read on the fast path: the bypass and the lease
        if now < self._skip_until:
            return Slot.UNCAPPED
        if self._block.admit(now):
            self._keep_renewing()
            return Slot.HELD
        waiter: asyncio.Future[Slot | None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        self._block.waiting += 1
        self._start_exchange()
        try:
            return await waiter
        except asyncio.CancelledError:
            if waiter in self._waiters:
                self._waiters.remove(waiter)
                self._block.waiting -= 1
            elif not waiter.cancelled() and waiter.result() is Slot.HELD:
                self.release(Slot.HELD)
            raise

    def release(self, slot: Slot) -> None:
        if slot is Slot.HELD and self._block.release() and not self.bypassed:
            self._start_exchange()

    async def aclose(self) -> None:
        """Give the block back (a worker shutting down); bounded like every call."""
        if self._renewing is not None:
            self._renewing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._renewing
        since = self._exchanges
        self._block.busy = False  # no spare: ask for what is in use, nothing once drained
        while self._block.held or self._block.upto:
            if self.bypassed:
                return
            number, answered = await self._exchange()
            if not answered or number > since:
                return

    def note_failure(self, exc: Exception) -> None:
        self.metrics.errors.inc()
        self._skip_until = time.monotonic() + self.backoff_s
        self._warnings.warn(
            self.key, "in-flight limiter unavailable, failing open", error=repr(exc)
        )

    async def _exchange(self) -> tuple[int, bool]:
        # Shielded: a request cancelled while waiting must not cancel the others' exchange.
        return await asyncio.shield(self._start_exchange())

    def _start_exchange(self) -> asyncio.Task[tuple[int, bool]]:
        """The exchange in flight, or a new one: one at a time per worker, so the block's numbers
        and the members in Redis change together."""
        task = self._exchanging
        if task is None or task.done():
            self._exchanges += 1
            task = self._exchanging = asyncio.create_task(self._run_exchange(self._exchanges))
            task.add_done_callback(self._after_exchange)
        return task

    async def _run_exchange(self, number: int) -> tuple[int, bool]:
        asked = self._block.ask()
        counted = len(self._waiters)  # the first ones, in the order they arrived
        sent = time.monotonic()
        try:
            async with asyncio.timeout(self.timeout_s):
                granted, held, contended = await self._exchange_script(
                    keys=[self.key, self._contended_key, self._needing_key],
                    args=self._args(asked),
                )
        except (RedisError, OSError, TimeoutError) as exc:
            self._block.failed(asked)
            self.note_failure(exc)
            while self._waiters:
                self._answer(Slot.UNCAPPED)
            return number, False
        block = self._block
        block.granted(int(granted), contended=contended == 1, valid_until=sent + self.lease_s)
        self.metrics.occupancy.set(int(held))
        if block.held:
            self._keep_renewing()
        # Answered here, before any other task runs: no later exchange can shrink the block
        # between the grant and the admission. Later arrivals wait for the next exchange.
        now = time.monotonic()
        for _ in range(min(counted, len(self._waiters))):
            self._answer(Slot.HELD if block.admit(now, answered=True) else None)
        return number, True

    def _answer(self, slot: Slot | None) -> None:
        waiter = self._waiters.popleft()
        self._block.waiting -= 1
        waiter.set_result(slot)

    def _args(self, asked: Ask) -> list[int | str]:
        return [
            self.cap,
            int(self.lease_s * 1000),
            self._owner(),
            asked.upto,
            asked.in_use,
            asked.need,
            asked.spare,
            self._contention_ms,
        ]

    def _after_exchange(self, task: asyncio.Task[tuple[int, bool]]) -> None:
        # Requests that arrived while the exchange was on its way, and slots freed meanwhile, are
        # asked for or given back now, not at the next renewal.
        if task.cancelled() or task.exception() is not None or not task.result()[1]:
            return
        if (self._waiters or self._block.return_due()) and not self.bypassed:
            self._start_exchange()

    def _owner(self) -> str:
        # Per process: workers forked from one parent must not share members.
        pid = os.getpid()
        if pid != self._owner_pid:
            self._owner_pid, self._owner_id = pid, uuid.uuid4().hex[:12]
        return self._owner_id

    def _keep_renewing(self) -> None:
        if self._renewing is None:
            self._renewing = asyncio.create_task(self._renew())

    async def _renew(self) -> None:
        """Renews the block while it is held, gives back idle spare; ends when nothing is held."""
        block = self._block
        try:
            while True:
                await asyncio.sleep(self.renew_s)
                if block.idle(time.monotonic()):
                    return
                answered = not self.bypassed and (await self._exchange())[1]
                block.busy = False
                if not answered and block.in_use == 0 and block.waiting == 0:
                    # Redis is away and nothing needs the block: it expires with its lease.
                    block.forget()
                    return
        finally:
            self._renewing = None


class InFlightLimitMiddleware:
    def __init__(
        self, app: ASGIApp, *, limiter: InFlightLimiter, exempt: frozenset[str] = frozenset()
    ) -> None:
        self.app = app
        self.limiter = limiter
        self.exempt = exempt

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self.app(scope, self._returning_on_shutdown(receive), send)
            return
        if scope["type"] != "http" or scope["path"] in self.exempt:
            await self.app(scope, receive, send)
            return
        slot = await self.limiter.acquire()
        if slot is None:
            self.limiter.metrics.rejected.inc()
            response = problem(
                429,
                f"the service is at its cap of {self.limiter.cap} requests in flight",
                headers={"Retry-After": "1"},
            )
            await response(scope, receive, send)
            return
        try:
            await self.app(scope, receive, send)
        finally:
            self.limiter.release(slot)

    def _returning_on_shutdown(self, receive: Receive) -> Receive:
        # The server says "shutdown" once its requests are done and before the app's own teardown
        # closes the Redis pools: the moment to give the block back rather than let it expire.
        async def wrapped() -> Message:
            message = await receive()
            if message["type"] == "lifespan.shutdown":
                await self.limiter.aclose()
            return message

        return wrapped
