"""The controlled delay ahead of the worker (queue_delay.py), on a clock the test moves."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.common.queue_delay import QueueDelay, waited_since

TARGET, INTERVAL = 0.005, 0.05


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _queue(clock: FakeClock) -> QueueDelay:
    return QueueDelay(target_s=TARGET, interval_s=INTERVAL, clock=clock)


def test_short_waits_are_always_admitted() -> None:
    clock = FakeClock()
    queue = _queue(clock)
    for _ in range(1000):
        clock.now += 0.001
        assert queue.admit(0.004)


def test_a_burst_is_absorbed_up_to_the_interval() -> None:
    clock = FakeClock()
    queue = _queue(clock)
    clock.now += 0.01
    assert queue.admit(0.03)  # the queue stands for less than the interval
    assert not queue.admit(0.06)  # never served after waiting longer than the interval
    clock.now += INTERVAL / 2
    assert queue.admit(0.02)


def test_a_standing_queue_refuses_what_waited_over_the_target_until_it_drains() -> None:
    clock = FakeClock()
    queue = _queue(clock)
    assert queue.admit(0.02)  # the first long wait
    clock.now += INTERVAL + 0.001
    assert not queue.admit(0.006)  # standing for longer than the interval: the target binds
    assert not queue.admit(0.02)
    assert queue.admit(0.003)  # drained: a short wait ...
    assert queue.admit(0.02)  # ... and the next long one starts a new burst


def test_an_idle_worker_is_not_a_standing_queue() -> None:
    clock = FakeClock()
    queue = _queue(clock)
    assert queue.admit(0.001)
    clock.now += 60  # nothing for a minute
    assert queue.admit(0.02)  # the first long wait after it is a burst, not a standing queue


@given(st.lists(st.tuples(st.floats(0, 0.2), st.floats(0, 0.5)), max_size=200))
def test_nothing_that_waited_longer_than_the_interval_is_served(
    steps: list[tuple[float, float]],
) -> None:
    clock = FakeClock()
    queue = _queue(clock)
    for advance, waited in steps:
        clock.now += advance
        admitted = queue.admit(waited)
        if waited > INTERVAL:
            assert not admitted
        if waited <= TARGET:
            assert admitted


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (b"t=99.5", 0.5),
        (b"99.75", 0.25),
        (b"t=101", 0.0),  # in the future (clock skew): no wait, never a refusal
        (b"t=", None),
        (b"t=abc", None),
        (b"t=nan", None),
        (b"t=-5", None),
        (b"", None),
    ],
)
def test_the_stamp_is_read_or_ignored(value: bytes, expected: float | None) -> None:
    assert waited_since(value, 100.0) == expected


def test_bounds_must_be_ordered() -> None:
    with pytest.raises(ValueError, match="target_s <= interval_s"):
        QueueDelay(target_s=0.1, interval_s=0.05)
