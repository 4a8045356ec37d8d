"""An adaptive concurrency limit for one worker process: the controller, no I/O.

The family of Netflix's concurrency-limits (Gradient2) and Envoy's adaptive concurrency: the limit
on requests in flight follows the latency those requests see. Each admitted request's latency
(RTT) is a sample. Samples are averaged over a short window (`window_s`, and at least
`MIN_SAMPLES`); at the end of each window the controller compares that short-term average with a
long-term baseline and moves the limit:

    allowed  = max(tolerance * baseline, floor_s)
    gradient = clamp(allowed / short, 0.5, 1)
    gradient < 1  ->  limit * gradient            (latency rose: admit fewer)
    otherwise     ->  limit + sqrt(limit)         (latency normal: probe upwards, Gradient2's
                                                   queue allowance), only when the window used at
                                                   least half the limit: an idle worker proves
                                                   nothing about a higher one
    bounded by [min_limit, max_limit]

The baseline is the latency the worker has when it is not overloaded. It falls fast (half-way to a
lower window at once), so a lighter mix is learnt within a few windows, and rises slowly (its
time constant is `baseline_s`), so a heavier mix of routes is learnt without treating it as
overload. It never rises from a window in which requests were refused: that latency is the queue
the limit itself allowed, and learning it would let the baseline, then the limit, creep up under
sustained overload until nothing is bounded (the drift Gradient2 is known for). Nor does it rise
from a window over its allowance: the first windows of an overload, before the limit binds, are
long and slow, and a rise weighted by their length would double the baseline in two of them.

Overload is a state, not a memory: the limit is held below `max_limit` only while latency has
been over its allowance recently. When `forget_s` passes without such a window, a request that
finds the worker at its limit resets the limit to `max_limit` instead of being refused. Without
this, a limit learnt under one burst would refuse the next, unrelated one long after the overload
ended (an idle worker closes no windows, and a lightly used one never proves a higher limit
safe). Under sustained overload the sawtooth (rise by sqrt, fall by the gradient) keeps crossing
the allowance every few windows, so the limit stays held.

`floor_s` keeps millisecond noise (a GC pause, the event loop's scheduling) from ever counting as
overload: refusing a request to save a few milliseconds costs the client more than it saves.

Refusal is a comparison: `acquire` never waits. The clock is injectable, so tests drive the
controller through any sequence of latencies without sleeping.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

# Fewer samples than this say too little about latency to move the limit on; the window is
# extended until they arrive.
MIN_SAMPLES = 10
# The steepest fall in one window: a single bad window halves the limit at most (Gradient2's).
MIN_GRADIENT = 0.5
# How far the baseline moves towards a lower window's average, at once.
BASELINE_FALL = 0.5


class AdaptiveLimit:
    def __init__(
        self,
        *,
        min_limit: int,
        max_limit: int,
        tolerance: float = 2.0,
        floor_s: float = 0.04,
        window_s: float = 0.1,
        baseline_s: float = 30.0,
        forget_s: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not 1 <= min_limit <= max_limit:
            raise ValueError("need 1 <= min_limit <= max_limit")
        if tolerance < 1:
            raise ValueError("tolerance must be at least 1")
        self.min_limit = min_limit
        self.max_limit = max_limit
        self.tolerance = tolerance
        self.floor_s = floor_s
        self.window_s = window_s
        self.baseline_s = baseline_s
        self.forget_s = forget_s
        self.clock = clock
        # Innocent until measured: a worker starts at its ceiling, so a burst at start-up is not
        # refused before there is any latency to judge it by.
        self._limit = float(max_limit)
        self.inflight = 0
        self._baseline: float | None = None
        self._window_start = clock()
        self._sum = 0.0
        self._count = 0
        self._peak = 0
        self._refused = False
        # When a window last found latency over its allowance (-inf: never).
        self._last_over = -math.inf

    @property
    def limit(self) -> int:
        return int(self._limit)

    @property
    def baseline(self) -> float | None:
        """The long-term latency, in seconds (None before the first window)."""
        return self._baseline

    def acquire(self) -> float | None:
        """The admitted request's start time (give it back to `release`), or None: refused."""
        if self.inflight >= self.limit:
            now = self.clock()
            if now - self._last_over < self.forget_s:
                self._refused = True
                return None
            self._limit = float(self.max_limit)  # the overload it was learnt under is over
            if self.inflight >= self.limit:
                self._refused = True
                return None
        self.inflight += 1
        self._peak = max(self._peak, self.inflight)
        return self.clock()

    def release(self, started: float) -> bool:
        """Record the finished request's latency; True when this closed a window (the limit may
        have moved)."""
        self.inflight -= 1
        now = self.clock()
        self._sum += now - started
        self._count += 1
        if self._count < MIN_SAMPLES or now - self._window_start < self.window_s:
            return False
        self._update(self._sum / self._count, now - self._window_start, now)
        self._window_start = now
        self._sum, self._count, self._peak = 0.0, 0, self.inflight
        self._refused = False
        return True

    def _allowed(self, baseline: float) -> float:
        return max(self.tolerance * baseline, self.floor_s)

    def _update(self, short: float, elapsed: float, now: float) -> None:
        baseline = self._baseline
        if baseline is None:
            baseline = short
        elif short < baseline:
            baseline += (short - baseline) * BASELINE_FALL
        elif not self._refused and short <= self._allowed(baseline):
            baseline += (short - baseline) * min(1.0, elapsed / self.baseline_s)
        self._baseline = baseline
        allowed = self._allowed(baseline)
        gradient = max(MIN_GRADIENT, min(1.0, allowed / short)) if short > 0 else 1.0
        if gradient < 1.0:
            self._last_over = now
            limit = self._limit * gradient
        elif 2 * self._peak >= self._limit:
            limit = self._limit + math.sqrt(self._limit)
        else:
            limit = self._limit
        self._limit = min(float(self.max_limit), max(float(self.min_limit), limit))
