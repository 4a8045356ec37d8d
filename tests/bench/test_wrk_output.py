"""Reading wrk's answer (bench/wrk_output.py): the BENCH_JSON line, and what fails a run."""

from __future__ import annotations

import dataclasses

import pytest
from wrk_output import WrkResult, bench_json, parse_wrk

WRK_OUTPUT = """Running 2s test @ http://127.0.0.1:8081/_ping/counter
  2 threads and 8 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     2.86ms    2.42ms  22.53ms   86.72%
  3164 requests in 1.00s, 642.69KB read
  Non-2xx or 3xx responses: 3
Requests/sec:   3154.24
BENCH_JSON {"requests": 3164, "duration_us": 1003093, "bytes": 658112, "errors": {"connect": 0, \
"read": 1, "write": 0, "status": 3, "timeout": 2}, "latency_us": {"mean": 2855.7, "max": 22527, \
"p50": 2297, "p90": 5552, "p99": 12655, "p99.9": 19123}, "bad_bodies": 4}
"""


def result(rps: float, p50: float = 1.0, p99: float = 5.0, **errors: int) -> WrkResult:
    return WrkResult(
        requests=int(rps * 10),
        duration_s=10.0,
        errors={"connect": 0, "read": 0, "write": 0, "status": 0, "timeout": 0, **errors},
        latency_ms={"p50": p50, "p90": p99, "p99": p99, "p99.9": p99, "mean": p50, "max": p99},
    )


def test_wrk_output_is_read_from_the_scripts_line() -> None:
    parsed = parse_wrk(WRK_OUTPUT)
    assert parsed.requests == 3164
    assert parsed.rps == pytest.approx(3154.2, abs=0.1)
    assert parsed.latency_ms["p50"] == pytest.approx(2.297)
    assert parsed.latency_ms["p99"] == pytest.approx(12.655)
    assert parsed.non_2xx == 3
    assert parsed.socket_errors == 3
    assert parsed.bad_bodies == 4
    assert parsed.failures == [
        "3 answers with status >= 400 that were not refusals",
        "socket errors: read 1, timeout 2",
        "4 answers without the expected body",
    ]


def test_wrk_output_without_the_line_is_an_error() -> None:
    with pytest.raises(ValueError, match="BENCH_JSON"):
        parse_wrk("Running 2s test\nRequests/sec: 10\n")


def test_a_clean_run_has_no_failures_and_an_empty_one_has() -> None:
    assert result(1000).failures == []
    assert result(0).failures == ["no request completed"]


def test_a_scripts_own_counts_are_kept_in_the_line() -> None:
    line = WRK_OUTPUT.replace('"bad_bodies": 4}', '"bad_bodies": 0, "reused": 7}')
    assert bench_json(line)["reused"] == 7
    assert parse_wrk(line).bad_bodies == 0


def test_explicit_refusals_are_counted_apart_from_errors_and_not_as_goodput() -> None:
    # 3 answers >= 400, 4 without the expected text; 2 of the 3 were the services' refusals.
    parsed = dataclasses.replace(parse_wrk(WRK_OUTPUT), refused=2)
    assert parsed.status_errors == 1
    assert parsed.goodput_rps == pytest.approx((3164 - 3) / 1.003093)
    assert parsed.failures == [
        "1 answers with status >= 400 that were not refusals",
        "socket errors: read 1, timeout 2",
        "2 answers without the expected body",
    ]
    assert parsed.to_json()["refused"] == 2


def test_a_run_whose_only_failures_were_refusals_did_not_fail() -> None:
    refused = dataclasses.replace(result(1000, status=40), refused=40)
    assert refused.failures == []
    assert refused.goodput_rps == pytest.approx(996.0)
