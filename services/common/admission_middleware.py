"""Admission control per worker: the ASGI middleware around `QueueDelay` (queue_delay.py: how
long the request waited before the worker took it up) and `AdaptiveLimit` (admission.py: how
many requests the worker holds, for the latency they see).

The queue is judged first: it costs a header lookup, and a request that already waited too long
is refused before it counts towards the concurrency limit. A request refused by either, or over
the worker's current limit, is answered at once with 503 problem+json and
`Retry-After: 1`: it never waits for a slot, so a refusal costs the client a round trip, not a
queue. 503 rather than the in-flight cap's 429: this instance is short of capacity (another
instance, or the same one a moment later, may serve it), not the client over a quota.

Where it sits (app.py): inside the request-context middleware (refusals get a request id and an
access line) and outside the metrics middleware and the cluster-wide in-flight cap. Outside the
cap because a local comparison is cheaper than the cap's two Redis round trips: an overloaded
worker refuses before it spends them. Outside the metrics because a refusal is not an error of
the service: `http_requests_total` (and so the 5xx ratio and its alert) counts what was admitted,
and `quartet_admission_refused_total` counts the refusals apart.

Pure ASGI, not BaseHTTPMiddleware, which costs a measurable share of a fast request. The quiet
paths and `/ping` are never refused nor measured: probes must answer under overload, and their
sub-millisecond latency would pull the baseline below every real route's.
"""

from __future__ import annotations

import time

from prometheus_client import Counter, Gauge
from starlette.types import ASGIApp, Receive, Scope, Send

from services.common.admission import AdaptiveLimit
from services.common.problems import problem
from services.common.queue_delay import HEADER, QueueDelay, waited_since

# One name for every service (the `service` label, and the scrape's `job`, say which). Under
# gunicorn each worker has its own limit: the instance's capacity is their sum (livesum).
# `reason`: "queue" (it had waited too long before the worker took it up) or "concurrency" (the
# worker was at its limit).
REFUSED = Counter(
    "quartet_admission_refused",
    "Requests refused at once by this worker's admission control",
    ["service", "reason"],
)
LIMIT = Gauge(
    "quartet_admission_limit",
    "The adaptive concurrency limit, summed over the instance's live workers",
    ["service"],
    multiprocess_mode="livesum",
)
INFLIGHT = Gauge(
    "quartet_admission_inflight",
    "Admitted requests in flight, summed over the instance's live workers",
    ["service"],
    multiprocess_mode="livesum",
)


class AdmissionMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        service: str,
        controller: AdaptiveLimit,
        queue: QueueDelay | None = None,
        exempt: frozenset[str] = frozenset(),
    ) -> None:
        self.app = app
        self.controller = controller
        self.queue = queue
        self.exempt = exempt
        self.refused_queue = REFUSED.labels(service, "queue")
        self.refused_concurrency = REFUSED.labels(service, "concurrency")
        self.limit = LIMIT.labels(service)
        self.inflight = INFLIGHT.labels(service)
        # Every series exists from the start (a refusal rate of 0 is a fact worth a line).
        self.refused_queue.inc(0)
        self.refused_concurrency.inc(0)
        self.limit.set(controller.limit)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self.exempt:
            await self.app(scope, receive, send)
            return
        if self.queue is not None and not self._queue_admits(scope):
            self.refused_queue.inc()
            await _refuse(scope, receive, send)
            return
        started = self.controller.acquire()
        if started is None:
            self.refused_concurrency.inc()
            await _refuse(scope, receive, send)
            return
        try:
            await self.app(scope, receive, send)
        finally:
            closed = self.controller.release(started)
            # The gauges when a window closes (every 0.1 s under load) or the worker falls idle,
            # not per request: in multiprocess mode each update is a write to a shared file, and
            # two per request cost ~3 % of a fast one; a scrape every few seconds sees the same,
            # and an idle worker still shows 0 in flight.
            if closed:
                self.limit.set(self.controller.limit)
            if closed or self.controller.inflight == 0:
                self.inflight.set(self.controller.inflight)

    def _queue_admits(self, scope: Scope) -> bool:
        assert self.queue is not None
        for name, value in scope["headers"]:
            if name == HEADER:
                waited = waited_since(value, time.time())
                return waited is None or self.queue.admit(waited)
        return True  # not stamped (not through the gateway): nothing to judge by


# The refusal's problem detail: how a client (the chaos run's traffic) tells it from a 503 that
# is an endpoint's own answer.
REFUSAL_DETAIL = "this instance is at its capacity; retry shortly"


async def _refuse(scope: Scope, receive: Receive, send: Send) -> None:
    response = problem(503, REFUSAL_DETAIL, headers={"Retry-After": "1"})
    await response(scope, receive, send)
