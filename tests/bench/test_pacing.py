"""The pacing of the half-rate runs (bench/pacing.py)."""

from __future__ import annotations

import pacing
import pytest


def test_pacing_delay() -> None:
    # 128 connections at 2,000 r/s: one request per connection every 64 ms, 4 of them waiting.
    assert pacing.pacing_delay_ms(128, 2000, 4) == pytest.approx(60)
    assert pacing.pacing_delay_ms(8, 10_000, 5) == 0.0


def test_recalibration_reaches_the_goal_when_latency_is_steady() -> None:
    connections, goal, latency = 128, 2000.0, 9.0
    delay = pacing.pacing_delay_ms(connections, goal, 4.0)  # guessed latency 4 ms
    achieved = 1000 * connections / (delay + latency)
    delay = pacing.recalibrate_delay_ms(connections, goal, delay, achieved)
    assert 1000 * connections / (delay + latency) == pytest.approx(goal)
    assert pacing.recalibrate_delay_ms(connections, goal, 12.0, 0) == 12.0
