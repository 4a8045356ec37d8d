"""The rounds of `make bench`: each endpoint's runs, its ratio to the ceiling of the same round,
its half-rate run, whether it meets its targets, which one to profile, and the printed table."""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from endpoints import Endpoint
from wrk_output import WrkResult


@dataclass
class Row:
    """One endpoint over every round: the median of the rounds, and the ratio to the ceiling of
    the same round (the mean of the ceiling measured at the start and end of that round)."""

    endpoint: Endpoint
    runs: list[WrkResult] = field(default_factory=list)
    ratios: list[float] = field(default_factory=list)
    half_rate: WrkResult | None = None
    half_rate_goal_rps: float | None = None
    # CPU cores each process group used during each measured run (see process_group).
    cpu: list[Mapping[str, float]] = field(default_factory=list)

    @property
    def cpu_cores(self) -> dict[str, float]:
        """Median over the runs of the cores each group used, busiest first."""
        groups = {g for run in self.cpu for g in run}
        medians = {g: statistics.median(run.get(g, 0.0) for run in self.cpu) for g in groups}
        return dict(sorted(((g, round(v, 2)) for g, v in medians.items() if v >= 0.005),
                           key=lambda item: -item[1]))  # fmt: skip

    @property
    def rps(self) -> float:
        """Median goodput: answers < 400 a second (refusals and errors are counted apart)."""
        return statistics.median(r.goodput_rps for r in self.runs) if self.runs else 0.0

    @property
    def ratio(self) -> float | None:
        return statistics.median(self.ratios) if self.ratios else None

    def latency(self, key: str) -> float:
        return statistics.median(r.latency_ms[key] for r in self.runs) if self.runs else 0.0

    @property
    def errors(self) -> int:
        """Answers >= 400 that were not explicit refusals, over the runs."""
        return sum(r.status_errors for r in self.runs)

    @property
    def refused(self) -> int:
        """Explicit refusals (503/429 with Retry-After, bench/refusals.py), over the runs."""
        return sum(r.refused for r in self.runs)

    @property
    def meets_target(self) -> bool | None:
        target, ratio = self.endpoint.target, self.ratio
        return None if target is None or ratio is None else ratio >= target

    @property
    def meets_half_rate_target(self) -> bool | None:
        target = self.endpoint.half_rate_target_ms
        if target is None or self.half_rate is None:
            return None
        return self.half_rate.latency_ms["p99"] <= target

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.endpoint.name,
            "group": self.endpoint.group,
            "path": self.endpoint.path,
            "rps": round(self.rps, 1),
            "rps_rounds": [round(r.goodput_rps, 1) for r in self.runs],
            "ratio": None if self.ratio is None else round(self.ratio, 3),
            "ratio_rounds": [round(r, 3) for r in self.ratios],
            "target_ratio": self.endpoint.target,
            "meets_target": self.meets_target,
            "p50_ms": round(self.latency("p50"), 2),
            "p99_ms": round(self.latency("p99"), 2),
            "errors": self.errors,
            "refused": self.refused,
            "cpu_cores": self.cpu_cores,
            "half_rate": None
            if self.half_rate is None
            else {
                "goal_rps": None
                if self.half_rate_goal_rps is None
                else round(self.half_rate_goal_rps, 1),
                "achieved_rps": round(self.half_rate.goodput_rps, 1),
                "p50_ms": round(self.half_rate.latency_ms["p50"], 2),
                "p99_ms": round(self.half_rate.latency_ms["p99"], 2),
                "target_p99_ms": self.endpoint.half_rate_target_ms,
                "meets_target": self.meets_half_rate_target,
                "errors": self.half_rate.status_errors,
                "refused": self.half_rate.refused,
            },
            "runs": [r.to_json() for r in self.runs],
        }


def round_ratio(result: WrkResult, ceilings: Sequence[WrkResult]) -> float:
    """An endpoint's goodput over the mean goodput of its round's ceiling runs."""
    ceiling = statistics.fmean(c.goodput_rps for c in ceilings)
    return result.goodput_rps / ceiling if ceiling > 0 else 0.0


def worst_against_target(rows: Iterable[Row]) -> Row | None:
    """The endpoint furthest below (or least above) its target ratio: the one to profile."""
    scored = [
        (row.ratio / row.endpoint.target, row)
        for row in rows
        if row.endpoint.target and row.ratio is not None
    ]
    return min(scored, key=lambda pair: pair[0])[1] if scored else None


def format_table(rows: Sequence[Row], ceiling: Row) -> str:
    """The plain-text table run.py prints (and docs/performance.md shows)."""
    head = (
        f"{'endpoint':<20} {'req/s':>7} {'ratio':>5} {'target':>6} {'met':>3} {'p50 ms':>7} "
        f"{'p99 ms':>7} {'errors':>6} {'refused':>7} | {'@50% req/s':>10} {'p50 ms':>7} "
        f"{'p99 ms':>7} {'met':>3}"
    )
    lines = [head, "-" * len(head)]

    def mark(value: bool | None) -> str:
        return "-" if value is None else ("yes" if value else "NO")

    for row in (ceiling, *rows):
        is_ceiling = row is ceiling
        ratio = "1.00" if is_ceiling else (f"{row.ratio:.2f}" if row.ratio is not None else "-")
        target = f"{row.endpoint.target:.2f}" if row.endpoint.target else "-"
        half = row.half_rate
        lines.append(
            f"{row.endpoint.name:<20} {row.rps:>7.0f} {ratio:>5} {target:>6} "
            f"{'' if is_ceiling else mark(row.meets_target):>3} {row.latency('p50'):>7.1f} "
            f"{row.latency('p99'):>7.1f} {row.errors:>6} {row.refused:>7} | "
            + (
                f"{half.goodput_rps:>10.0f} {half.latency_ms['p50']:>7.1f} "
                f"{half.latency_ms['p99']:>7.1f} "
                f"{mark(row.meets_half_rate_target):>3}"
                if half is not None
                else f"{'-':>10} {'-':>7} {'-':>7} {'-':>3}"
            )
        )
    return "\n".join(lines)
