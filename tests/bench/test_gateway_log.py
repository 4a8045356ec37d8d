"""Reading one run's answers from the gateway's access lines (bench/gateway_log.py)."""

from __future__ import annotations

import json
from pathlib import Path

from gateway_log import Answer, LogTail, Outcomes, answers, percentile

UA = "quartet-overload/abc"


def line(status: int, seconds: float, retry_after: str = "", user_agent: str = UA) -> bytes:
    fields = {"status": status, "request_time": seconds, "retry_after": retry_after}
    return json.dumps({**fields, "user_agent": user_agent}).encode() + b"\n"


def test_only_a_429_or_503_with_retry_after_is_a_refusal() -> None:
    assert Answer(200, 3.0, False).kind == "admitted"
    assert Answer(503, 1.0, True).kind == "refused"
    assert Answer(429, 1.0, True).kind == "refused"
    assert Answer(503, 1.0, False).kind == "error"  # a 503 that does not say when to come back
    assert Answer(504, 1.0, True).kind == "error"
    assert Answer(499, 1.0, False).kind == "abandoned"  # the client left first


def test_the_tail_reads_only_what_was_appended_after_it_opened_and_follows_a_rotation(
    tmp_path: Path,
) -> None:
    log = tmp_path / "nginx.log"
    log.write_bytes(line(200, 0.001))  # before the run: not ours
    tail = LogTail(log)
    with log.open("ab") as f:
        f.write(line(200, 0.004) + line(503, 0.001, "1") + line(200, 0.002, user_agent="other"))
        f.write(line(502, 0.010)[:10])  # half written
    found = list(answers(tail.read(), UA))
    assert [a.status for a in found] == [200, 503]
    with log.open("ab") as f:
        f.write(line(502, 0.010)[10:])
    log.rename(tmp_path / "nginx.log.1")  # supervisord's rotation, then a new file
    log.write_bytes(line(200, 0.120))
    outcomes = Outcomes.of(answers(tail.read(), UA))
    tail.close()
    assert outcomes.errors == {502: 1}
    assert outcomes.admitted_ms == [120.0]
    assert outcomes.good(100) == 0


def test_percentiles_are_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50.0
    assert percentile(values, 99) == 99.0
    assert percentile([], 99) is None
