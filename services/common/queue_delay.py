"""Refuse what has already waited too long ahead of the worker: a controlled delay, no I/O.

The concurrency limit (admission.py) sees only what happens after its middleware is entered. When
a worker's event loop is saturated by fast requests, that part stays short (each request runs
to its answer in well under a millisecond) while requests wait for the loop in the socket
buffers: `make overload` measured in-worker latency under 100 ms for every request, and p99
2.5 s at the gateway, with no refusal. The wait is visible only from where it started: the
gateway stamps each request with the time it sent it (`X-Request-Start: t=<epoch seconds>`,
nginx's `$msec`), and the middleware computes how long it waited before the worker took it up.

The rule is Facebook's controlled delay for server queues (Maurer, "Fail at Scale", ACM Queue
2015), itself from CoDel: a queue that has been empty recently is absorbing a burst, one that has
not is standing, and only a standing queue is overload.

    waited <= target                           ->  admit; the queue is (nearly) empty
    every request for longer than interval     ->  a standing queue: refuse what waited more
      waited more than target                      than target
    otherwise (a burst)                        ->  refuse only what waited more than interval

A burst (a GC pause, the first seconds of a rush) is absorbed up to `interval` of waiting; once
the queue stands, requests are refused after waiting only `target`, which a refusal's cheapness
then drains. Both bounds are the admitted requests' too: nothing that has waited longer than
`interval` is served, so admitted latency is bounded by `interval` plus the work.

The defaults, 50 ms and 100 ms, are ten and two times Facebook's 5 and 100 ms: a closed loop of
64 bench connections keeps 16 requests waiting per worker, and with a target of 5 ms that
standing queue of a few milliseconds (which is throughput, not overload) was refused in part on
every endpoint and broke composed pages whose peers refused them. The gateway bounds each
instance's queue anyway (at most 64 requests in flight to it, nginx `max_conns`); this
controller is for what that bound cannot see: a worker that stalls or is starved of CPU while it
holds them, and slow work queued behind fast. A target under a few milliseconds would mean
nothing: the stamp has nginx's millisecond resolution and its cached clock. The gateway's and the
worker's clocks must agree (the same host locally and in compose; NTP across a Kubernetes cluster,
where a skew of more than `target` would refuse everything or nothing, docs/reliability.md).
"""

from __future__ import annotations

import time
from collections.abc import Callable

# The header's value is nginx's `t=${msec}`; a bare number is accepted too (Heroku's and New
# Relic's convention, so another proxy in front works unchanged).
HEADER = b"x-request-start"


def waited_since(value: bytes, now: float) -> float | None:
    """How long ago, in seconds, the stamp `value` was taken; None when it is not a stamp.

    A stamp in the future (clock skew) counts as no wait: it must never refuse anything.
    """
    if value.startswith(b"t="):
        value = value[2:]
    try:
        stamp = float(value)
    except ValueError:
        return None
    if stamp != stamp or stamp <= 0:  # NaN, or not an epoch time
        return None
    return max(0.0, now - stamp)


class QueueDelay:
    def __init__(
        self,
        *,
        target_s: float = 0.05,
        interval_s: float = 0.1,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not 0 < target_s <= interval_s:
            raise ValueError("need 0 < target_s <= interval_s")
        self.target_s = target_s
        self.interval_s = interval_s
        self.clock = clock
        # Since when every request has waited longer than the target (None: the last one did
        # not). Counted from the first long wait, not from the last short one, so an idle worker
        # (no request at all for a while) is not mistaken for one with a standing queue.
        self._above_since: float | None = None

    def admit(self, waited_s: float) -> bool:
        """Whether a request that waited `waited_s` before the worker took it up is served."""
        if waited_s <= self.target_s:
            self._above_since = None
            return True
        now = self.clock()
        if self._above_since is None:
            self._above_since = now
        if now - self._above_since > self.interval_s:
            return False  # a standing queue: what waits longer than the target is refused
        return waited_s <= self.interval_s
