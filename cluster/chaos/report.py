"""The run's outcome: a table on the terminal (rich) and the same facts as JSON."""

from __future__ import annotations

import json
import statistics
from collections import Counter
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from cluster.chaos.faults import Fault
from cluster.chaos.invariants import Invariant
from cluster.chaos.traffic import Tally


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def build(
    config: dict[str, Any],
    faults: list[Fault],
    t0: float,
    tally: Tally,
    invariants: list[Invariant],
) -> dict[str, Any]:
    by_endpoint: dict[str, dict[str, int]] = {}
    for (endpoint, kind), count in sorted(tally.answers.items()):
        by_endpoint.setdefault(endpoint, {})[kind] = count
    return {
        "config": config,
        "faults": [f.as_json(t0) for f in faults],
        "fault_counts": dict(Counter(f.kind for f in faults)),
        "requests": tally.requests,
        "answers": by_endpoint,
        "latency_ms": {
            endpoint: {
                "p50": round(statistics.median(v) * 1000, 1),
                "p99": round(_percentile(v, 0.99) * 1000, 1),
                "max": round(max(v) * 1000, 1),
            }
            for endpoint, v in sorted(tally.latencies.items())
            if v
        },
        "slow": [
            {"started": round(at - t0, 2), "endpoint": e, "answer": k, "seconds": round(sec, 3)}
            for at, e, k, sec in tally.slow
        ],
        "invariants": [
            {"name": i.name, "held": i.held, "detail": i.detail, "figures": i.figures}
            for i in invariants
        ],
        "held": all(i.held for i in invariants),
    }


def write(report: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=1, default=str) + "\n")


def show(report: dict[str, Any], console: Console | None = None) -> None:
    console = console or Console()
    faults = Table(title="faults")
    faults.add_column("kind")
    faults.add_column("count", justify="right")
    faults.add_column("targets")
    for kind, count in sorted(report["fault_counts"].items()):
        targets = sorted({f["target"] for f in report["faults"] if f["kind"] == kind})
        faults.add_row(kind, str(count), ", ".join(targets))
    console.print(faults)

    kinds = sorted({k for v in report["answers"].values() for k in v})
    answers = Table(title=f"answers ({report['requests']} requests)")
    answers.add_column("endpoint")
    for kind in kinds:
        answers.add_column(kind, justify="right")
    answers.add_column("p99 ms", justify="right")
    answers.add_column("max ms", justify="right")
    for endpoint, found in report["answers"].items():
        latency = report["latency_ms"].get(endpoint, {})
        answers.add_row(
            endpoint,
            *(str(found.get(kind, "")) for kind in kinds),
            str(latency.get("p99", "")),
            str(latency.get("max", "")),
        )
    console.print(answers)

    invariants = Table(title="invariants")
    invariants.add_column("invariant")
    invariants.add_column("held")
    invariants.add_column("detail")
    for inv in report["invariants"]:
        mark = "[green]yes[/]" if inv["held"] else "[bold red]NO[/]"
        invariants.add_row(inv["name"], mark, inv["detail"])
    console.print(invariants)
