"""The pacing of the half-rate runs: closed-loop wrk connections slowed by a per-request delay
(bench/wrk.lua's `delay=`) until they send a goal rate."""

from __future__ import annotations


def pacing_delay_ms(connections: int, goal_rps: float, latency_ms: float) -> float:
    """The mean delay before each request that makes `connections` closed-loop connections send
    `goal_rps` in total when each answer takes `latency_ms`: c / rate = delay + latency."""
    return max(0.0, 1000 * connections / goal_rps - latency_ms)


def recalibrate_delay_ms(
    connections: int, goal_rps: float, delay_ms: float, achieved_rps: float
) -> float:
    """After a trial at `delay_ms` reached `achieved_rps`: the latency it implies, then the delay
    for the goal."""
    if achieved_rps <= 0:
        return delay_ms
    implied_latency = 1000 * connections / achieved_rps - delay_ms
    return pacing_delay_ms(connections, goal_rps, max(0.0, implied_latency))
