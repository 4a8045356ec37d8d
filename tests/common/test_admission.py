"""The adaptive concurrency limit's controller, on a clock the test moves (no sleeping)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.common.admission import MIN_SAMPLES, AdaptiveLimit


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _controller(clock: FakeClock, **overrides: float) -> AdaptiveLimit:
    options: dict[str, float] = {
        "min_limit": 4,
        "max_limit": 200,
        "tolerance": 2.0,
        "floor_s": 0.0,
        "window_s": 0.1,
        "baseline_s": 30.0,
        "forget_s": 2.0,
    }
    options.update(overrides)
    return AdaptiveLimit(
        min_limit=int(options["min_limit"]),
        max_limit=int(options["max_limit"]),
        tolerance=options["tolerance"],
        floor_s=options["floor_s"],
        window_s=options["window_s"],
        baseline_s=options["baseline_s"],
        forget_s=options["forget_s"],
        clock=clock,
    )


def _window(limit: AdaptiveLimit, clock: FakeClock, latency_s: float, concurrency: int) -> bool:
    """One window: `concurrency` requests at once, each taking `latency_s`, repeated until a window
    closes. True if every request was admitted."""
    admitted_all = True
    while True:
        starts = [limit.acquire() for _ in range(concurrency)]
        admitted = [s for s in starts if s is not None]
        admitted_all = admitted_all and len(admitted) == concurrency
        clock.now += latency_s
        closed = [limit.release(s) for s in admitted]
        if any(closed):
            return admitted_all
        if not admitted:
            clock.now += 0.01  # nothing to measure: let time pass as it would


def test_the_limit_falls_when_latency_rises() -> None:
    clock = FakeClock()
    limit = _controller(clock)
    for _ in range(20):
        _window(limit, clock, 0.005, 50)
    before = limit.limit
    assert limit.baseline == pytest.approx(0.005)
    for _ in range(5):
        _window(limit, clock, 0.05, 50)  # ten times the baseline
    assert limit.limit < before / 2
    assert limit.limit >= limit.min_limit


def test_the_limit_recovers_when_latency_falls_back() -> None:
    clock = FakeClock()
    limit = _controller(clock)
    for _ in range(10):
        _window(limit, clock, 0.005, 50)
    for _ in range(20):
        _window(limit, clock, 0.5, 50)
    assert limit.limit == limit.min_limit
    # Back to normal latency, with enough demand to use the limit: it climbs back to the ceiling.
    for _ in range(200):
        _window(limit, clock, 0.005, limit.limit)
    assert limit.limit == limit.max_limit


def test_an_idle_worker_does_not_raise_its_limit() -> None:
    clock = FakeClock()
    limit = _controller(clock)
    for _ in range(10):
        _window(limit, clock, 0.005, 50)
    for _ in range(20):
        _window(limit, clock, 0.5, 50)
    low = limit.limit
    # Fast again, but only one request at a time: nothing says a higher limit would be safe.
    for _ in range(50):
        _window(limit, clock, 0.005, 1)
    assert limit.limit == low


def test_over_the_limit_is_refused_at_once_and_a_release_frees_a_slot() -> None:
    clock = FakeClock()
    limit = _controller(clock, min_limit=3, max_limit=3)
    starts = [limit.acquire() for _ in range(3)]
    assert None not in starts
    before = clock.now
    assert limit.acquire() is None  # a comparison, not a wait: the clock did not move
    assert clock.now == before
    assert limit.inflight == 3
    first = starts[0]
    assert first is not None
    limit.release(first)
    assert limit.acquire() is not None


def _overload_to_the_minimum(limit: AdaptiveLimit, clock: FakeClock) -> None:
    for _ in range(10):
        _window(limit, clock, 0.005, 50)
    for _ in range(20):
        _window(limit, clock, 0.5, 50)
    assert limit.limit == limit.min_limit


def test_a_recent_overload_still_refuses_a_burst() -> None:
    clock = FakeClock()
    limit = _controller(clock, forget_s=2.0)
    _overload_to_the_minimum(limit, clock)
    clock.now += 1.0  # within forget_s of the last window over the allowance
    starts = [limit.acquire() for _ in range(50)]
    assert sum(s is not None for s in starts) == limit.min_limit


def test_an_overload_long_past_does_not_refuse_the_next_burst() -> None:
    clock = FakeClock()
    limit = _controller(clock, forget_s=2.0)
    _overload_to_the_minimum(limit, clock)
    clock.now += 2.5  # quiet for longer than forget_s: that overload is over
    starts = [limit.acquire() for _ in range(50)]
    assert None not in starts
    assert limit.limit == limit.max_limit


def test_sustained_overload_keeps_the_limit_held_and_latency_near_the_floor() -> None:
    """A worker whose latency is its queue: each request in flight adds 2 ms (one core shared by
    every admitted request). Demand of 400 at once for 30 s, far past forget_s: the limit must
    stay held (never reset to the maximum) and the admitted latency near the 40 ms floor."""
    clock = FakeClock()
    limit = _controller(clock, floor_s=0.04, min_limit=4, max_limit=1000, forget_s=2.0)
    for _ in range(20):
        _window(limit, clock, 0.010, 5)  # normal load: 5 in flight, 10 ms
    limits, latencies = [], []
    while clock.now < 1000.0 + 40:
        admitted = min(400, limit.limit)
        latency = 0.002 * admitted
        _window(limit, clock, latency, 400)
        limits.append(limit.limit)
        latencies.append(latency)
    settled_limits, settled = limits[len(limits) // 4 :], latencies[len(latencies) // 4 :]
    assert max(settled_limits) < 100  # held: never back at 1000
    assert sum(settled) / len(settled) < 0.06  # about the floor (40 ms), not the 800 ms queue


def test_latency_under_the_floor_never_lowers_the_limit() -> None:
    clock = FakeClock()
    limit = _controller(clock, floor_s=0.02)
    for _ in range(10):
        _window(limit, clock, 0.001, 50)
    for _ in range(20):
        _window(limit, clock, 0.015, 50)  # 15x the baseline, but under 20 ms
    assert limit.limit == limit.max_limit


def test_the_baseline_does_not_learn_overload_it_refused_under() -> None:
    clock = FakeClock()
    limit = _controller(clock, baseline_s=1.0)
    for _ in range(10):
        _window(limit, clock, 0.005, 50)
    baseline = limit.baseline
    # Sustained overload: far more demand than the limit, for many baseline time constants.
    for _ in range(300):
        _window(limit, clock, 0.5, 400)
    assert limit.baseline == baseline
    assert limit.limit == limit.min_limit


def test_a_slower_mix_is_learnt_slowly_when_nothing_is_refused() -> None:
    clock = FakeClock()
    # 4x the baseline, but within the floor's allowance: a heavier mix, not overload.
    limit = _controller(clock, baseline_s=1.0, min_limit=100, floor_s=0.04)
    for _ in range(10):
        _window(limit, clock, 0.005, 20)
    for _ in range(400):
        _window(limit, clock, 0.02, 20)
    baseline = limit.baseline
    assert baseline is not None
    assert baseline == pytest.approx(0.02, rel=0.05)


def test_a_window_needs_enough_samples() -> None:
    clock = FakeClock()
    limit = _controller(clock)
    for _ in range(MIN_SAMPLES - 1):
        started = limit.acquire()
        assert started is not None
        clock.now += 1.0
        assert limit.release(started) is False
    assert limit.baseline is None


@given(
    st.lists(
        st.tuples(st.floats(0.0001, 5.0), st.integers(1, 300)),
        min_size=1,
        max_size=40,
    )
)
def test_the_limit_stays_within_its_bounds(windows: list[tuple[float, int]]) -> None:
    clock = FakeClock()
    limit = _controller(clock, min_limit=5, max_limit=60)
    for latency, concurrency in windows:
        _window(limit, clock, latency, concurrency)
        assert 5 <= limit.limit <= 60
        assert limit.inflight == 0


@pytest.mark.parametrize(("low", "high"), [(0, 10), (11, 10)])
def test_bounds_are_checked(low: int, high: int) -> None:
    with pytest.raises(ValueError, match="min_limit"):
        AdaptiveLimit(min_limit=low, max_limit=high)
