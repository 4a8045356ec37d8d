"""A cluster-wide cap on the requests a service has in flight, shared through Redis.

Every worker of every replica takes a lease before handling a request and gives it back after.
The holders live in one sorted set per service, scored by the lease's expiry in milliseconds of the
Redis server's own clock (`TIME`), so workers on machines with skewed clocks agree. Each acquire
first prunes expired leases: a worker killed mid-request (OOM, SIGKILL) cannot leak its slot for
longer than the lease. Acquire and release are one Lua script each, so check-and-add is atomic.

When Redis cannot be reached the limiter fails open: the request is served, a warning is logged
(at most every 10 s per process) and `<service>_inflight_limiter_errors_total` counts it. A cap
that takes the service down with it when Redis blinks would do more harm than the overload it
guards against; the gateway's own per-client limits still hold.

The limiter never makes a request late: each call to Redis is bounded by INFLIGHT_TIMEOUT_S (a
few milliseconds when the shard is healthy, so the default 50 ms is far above normal), and after a
failure the process stops asking for INFLIGHT_BACKOFF_S, serving uncapped meanwhile. A stalled
shard (SIGSTOP: connections accepted, never answered) therefore costs at most one bounded wait per
request that was already waiting when it stalled, then nothing until the next probe.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from dataclasses import dataclass
from functools import cache

from prometheus_client import Counter, Gauge
from redis.asyncio import Redis
from redis.exceptions import RedisError
from starlette.types import ASGIApp, Receive, Scope, Send

from services.common.problems import problem
from services.common.throttled_log import ThrottledWarnings

log = logging.getLogger(__name__)

_ACQUIRE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local held = redis.call('ZCARD', KEYS[1])
if held >= tonumber(ARGV[1]) then
  return {0, held}
end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return {1, held + 1}
"""

_RELEASE = """
redis.call('ZREM', KEYS[1], ARGV[1])
return redis.call('ZCARD', KEYS[1])
"""


@dataclass(frozen=True)
class Lease:
    token: str
    occupancy: int


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
            "Requests in flight across the whole service, as last seen by this worker",
            multiprocess_mode="livemax",
        ),
        errors=Counter(
            f"{service}_inflight_limiter_errors",
            "Limiter calls that failed (Redis unreachable); the request was served anyway",
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
        self.lease_ms = int(lease_s * 1000)
        self.timeout_s = timeout_s
        self.backoff_s = backoff_s
        self._acquire = redis.register_script(_ACQUIRE)
        self._release = redis.register_script(_RELEASE)
        self.metrics = _metrics(service)
        self._warnings = ThrottledWarnings(log)
        self._skip_until = 0.0

    @property
    def bypassed(self) -> bool:
        """True while failing open after a recent failure: the request is served uncapped."""
        return time.monotonic() < self._skip_until

    async def acquire(self) -> Lease | None:
        """A lease, or None when the service is at its cap. Raises RedisError if Redis fails,
        TimeoutError if it does not answer within timeout_s."""
        token = uuid.uuid4().hex
        async with asyncio.timeout(self.timeout_s):
            granted, held = await self._acquire(
                keys=[self.key], args=[self.cap, self.lease_ms, token]
            )
        self.metrics.occupancy.set(held)
        return Lease(token, int(held)) if granted == 1 else None

    async def release(self, lease: Lease) -> None:
        async with asyncio.timeout(self.timeout_s):
            held = await self._release(keys=[self.key], args=[lease.token])
        self.metrics.occupancy.set(held)

    def note_failure(self, exc: Exception) -> None:
        self.metrics.errors.inc()
        now = time.monotonic()
        self._skip_until = now + self.backoff_s
        self._warnings.warn(
            self.key, "in-flight limiter unavailable, failing open", error=repr(exc)
        )


class InFlightLimitMiddleware:
    def __init__(
        self, app: ASGIApp, *, limiter: InFlightLimiter, exempt: frozenset[str] = frozenset()
    ) -> None:
        self.app = app
        self.limiter = limiter
        self.exempt = exempt

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self.exempt or self.limiter.bypassed:
            await self.app(scope, receive, send)
            return
        try:
            lease = await self.limiter.acquire()
        except (RedisError, OSError, TimeoutError) as exc:
            self.limiter.note_failure(exc)
            await self.app(scope, receive, send)
            return
        if lease is None:
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
            try:
                await self.limiter.release(lease)
            except (RedisError, OSError, TimeoutError) as exc:
                # The lease expires by itself; nothing leaks for longer than lease_s. The answer
                # was sent before this: a slow release delays no one.
                self.limiter.note_failure(exc)
