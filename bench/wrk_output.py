"""How wrk's answer is read: the `BENCH_JSON` line bench/wrk_report.lua prints from every bench
script's done(), and what makes a run untrustworthy as a measurement."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

MARKER = "BENCH_JSON "


@dataclass(frozen=True)
class WrkResult:
    requests: int
    duration_s: float
    errors: Mapping[str, int]
    latency_ms: Mapping[str, float]
    bad_bodies: int = 0
    # Of the answers >= 400, those the services counted as explicit refusals (bench/refusals.py),
    # filled in after the run: they are reported, not failures.
    refused: int = 0

    @property
    def rps(self) -> float:
        return self.requests / self.duration_s if self.duration_s > 0 else 0.0

    @property
    def non_2xx(self) -> int:
        """Answers with a status >= 400 (wrk counts 3xx as fine; no endpoint here redirects)."""
        return self.errors.get("status", 0)

    @property
    def status_errors(self) -> int:
        """Answers >= 400 that were not explicit refusals: failures of the endpoint."""
        return max(0, self.non_2xx - self.refused)

    @property
    def goodput_rps(self) -> float:
        """Answers < 400 a second: the work served, which the ratios are made of (a refusal is
        cheap, and counting it would reward refusing)."""
        ok = self.requests - self.non_2xx
        return ok / self.duration_s if self.duration_s > 0 else 0.0

    @property
    def socket_errors(self) -> int:
        return sum(v for k, v in self.errors.items() if k != "status")

    @property
    def failures(self) -> list[str]:
        """Why this run cannot be trusted as a measurement of a working endpoint."""
        found = []
        if self.requests == 0:
            found.append("no request completed")
        if self.status_errors:
            found.append(f"{self.status_errors} answers with status >= 400 that were not refusals")
        if self.socket_errors:
            detail = ", ".join(f"{k} {v}" for k, v in self.errors.items() if k != "status" and v)
            found.append(f"socket errors: {detail}")
        # A refusal's problem+json lacks the expected text too: it is not a bad body.
        bad_bodies = max(0, self.bad_bodies - self.refused)
        if bad_bodies:
            found.append(f"{bad_bodies} answers without the expected body")
        return found

    def to_json(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "duration_s": round(self.duration_s, 3),
            "rps": round(self.rps, 1),
            "goodput_rps": round(self.goodput_rps, 1),
            "refused": self.refused,
            "latency_ms": dict(self.latency_ms),
            "errors": dict(self.errors),
            "bad_bodies": self.bad_bodies,
        }


def bench_json(output: str) -> dict[str, Any]:
    """The `BENCH_JSON` line as written, with any counts a script adds (giftcode_claims.lua's
    `reused`)."""
    for line in output.splitlines():
        if line.startswith(MARKER):
            data: dict[str, Any] = json.loads(line[len(MARKER) :])
            return data
    raise ValueError(f"no {MARKER.strip()} line in wrk's output: {output[-500:]!r}")


def parse_wrk(output: str) -> WrkResult:
    data = bench_json(output)
    return WrkResult(
        requests=int(data["requests"]),
        duration_s=data["duration_us"] / 1e6,
        errors={k: int(v) for k, v in data["errors"].items()},
        latency_ms={k: v / 1000 for k, v in data["latency_us"].items()},
        bad_bodies=int(data.get("bad_bodies", 0)),
    )
