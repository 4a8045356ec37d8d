"""The run's verdict, from locust's statistics when it quits: the counts outcomes.py sorts the
failures into, the latencies, pass or fail (the process's exit code), the summary JSON beside
locust's CSV files, and the text printed after locust's own tables.

Only locust, the standard library and the sibling modules: the stock locust image runs this.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import outcomes
import run_state
from locust.env import Environment
from locust.runners import WorkerRunner
from locust.stats import StatsEntry

# Every request name starts with "<kind>: " (outcomes.requests_by_kind); the fan-out's p99 is
# the aggregator's deadline, so the p99 is also reported without it.
FANOUT_KIND = "api-client"


def _merged(environment: Environment, keep: Callable[[str], bool]) -> StatsEntry:
    merged = StatsEntry(environment.stats, "merged", "", use_response_times_cache=False)
    for entry in environment.stats.entries.values():
        if keep(entry.name):
            merged.extend(entry)
    return merged


def _percentile(entry: StatsEntry, fraction: float) -> float | None:
    return float(entry.get_response_time_percentile(fraction)) if entry.num_requests else None


def judge(environment: Environment) -> None:
    """When locust quits (before its tables): the verdict as the exit code, the summary JSON
    beside the CSV files (with --csv), and the text for print_last."""
    runner = environment.runner
    if runner is None or isinstance(runner, WorkerRunner):
        return  # the master (or the single process) judges the whole run
    report = report_of(environment, len(runner.exceptions))
    environment.process_exit_code = 0 if report["passed"] else 1
    run_state.of(environment).verdict = render(report)
    prefix = getattr(environment.parsed_options, "csv_prefix", None)
    if prefix:
        with open(f"{prefix}_summary.json", "w", encoding="utf-8") as f:
            json.dump(report, f, indent=2, sort_keys=True)
            f.write("\n")


def print_last(state: run_state.RunState) -> None:
    # At locust's quit, after its own tables, so the verdict is the last thing on the screen.
    if state.verdict:
        print(state.verdict, flush=True)


def report_of(environment: Environment, task_exceptions: int) -> dict[str, Any]:
    """The summary JSON: what was served, what failed and how, the latencies, pass or fail."""
    runner = environment.runner
    stats = environment.stats
    summary = outcomes.summarize(
        stats.total.num_requests,
        (
            outcomes.ErrorRow(
                e.method or "",
                e.name,
                outcomes.error_message(e.to_name(), e.method, e.name),
                e.occurrences,
            )
            for e in stats.errors.values()
        ),
    )
    options = environment.parsed_options
    threshold = float(getattr(options, "max_error_rate", 1.0))
    passed, why = summary.verdict(threshold)
    if task_exceptions:
        passed, why = False, f"{task_exceptions} exceptions in the locustfile's tasks"
    non_fanout = _merged(environment, lambda name: not name.startswith(f"{FANOUT_KIND}: "))
    return {
        "passed": passed,
        "why": why,
        "max_error_rate_percent": threshold,
        "requests": summary.requests,
        "served": summary.served,
        "rate_limited_429": summary.rate_limited,
        "upstream_502_504": summary.upstream,
        "refused_503_429": summary.refused,
        "ok": summary.ok,
        "unexpected": summary.unexpected,
        "unexpected_rate_percent": round(100 * summary.unexpected_rate, 4),
        "unexpected_by_message": dict(summary.unexpected_by_message.most_common()),
        "task_exceptions": task_exceptions,
        "rps": round(stats.total.total_rps, 1),
        # Answers as promised a second (the refused, limited and failed left out).
        "goodput_rps": round(stats.total.total_rps * summary.ok / max(1, summary.requests), 1),
        "p50_ms": _percentile(stats.total, 0.5),
        "p99_ms": _percentile(stats.total, 0.99),
        "p99_ms_excluding_fanout": _percentile(non_fanout, 0.99),
        "load_generator_cpu_warning": bool(getattr(runner, "cpu_warning_emitted", False)),
        "host": environment.host,
        "users": getattr(options, "num_users", None),
        "think_time": getattr(options, "think_time", None),
        "run_time": getattr(options, "run_time", None),
    }


def render(report: dict[str, Any]) -> str:
    lines = [
        "",
        "Quartet load test verdict",
        f"  requests {report['requests']}, served {report['served']} "
        f"({report['rps']} req/s), p50 {report['p50_ms']} ms, p99 {report['p99_ms']} ms, "
        f"p99 without fan-out {report['p99_ms_excluding_fanout']} ms",
        f"  expected, reported apart: {report['rate_limited_429']} x 429 from the gateway's "
        f"limits, {report['upstream_502_504']} x 502/504 from the aggregator (work server failed), "
        f"{report['refused_503_429']} x 503/429 with Retry-After (refused: over capacity)",
        f"  goodput {report['goodput_rps']} req/s ({report['ok']} answered as promised)",
        f"  unexpected: {report['unexpected']} ({report['unexpected_rate_percent']} %)",
    ]
    lines += [f"    {count} x {what}" for what, count in report["unexpected_by_message"].items()]
    if report["load_generator_cpu_warning"]:
        lines.append("  WARNING: locust's CPU went above 90 %: the load generator was a bottleneck")
    lines.append(f"  {'PASSED' if report['passed'] else 'FAILED'}: {report['why']}")
    return "\n".join(lines)
