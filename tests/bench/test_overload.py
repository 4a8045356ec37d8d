"""`make overload` end to end against the test cluster: one endpoint at twice what it served in a
closed loop, through the gateway. What the cluster admits is answered without a queue nobody
bounds, and the rest is refused explicitly (429/503 with Retry-After), never failed."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.bench.conftest import run_script
from tests.support.cluster import RunningCluster

# Far above what admission control lets an admitted request wait (100 ms ahead of the worker,
# at most 64 in flight per instance), far below the seconds the same run took before it
# (docs/reliability.md: p99 2.5 to 5.7 s): a bound, not a speed target.
ADMITTED_P99_BOUND_MS = 1000


@pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is not installed")
def test_twice_the_capacity_is_served_in_bounded_time_or_refused_explicitly(
    cluster: RunningCluster, tmp_path: Path
) -> None:
    output = run_script(
        "overload.py",
        cluster,
        *("--out", str(tmp_path)),
        *("--endpoint", "recommend cached", "--factor", "2"),
        *("--capacity-seconds", "3", "--calibration", "1", "--seconds", "5"),
    )
    (report_path,) = tmp_path.glob("overload-*.json")
    run = json.loads(report_path.read_text())["overload"]
    assert run["offered_factor"] > 1.2, output  # it was an overload
    assert run["errors"] == 0, output  # nothing but answers and explicit refusals
    assert run["refused"] > 0, output
    assert run["admitted_p99_ms"] < ADMITTED_P99_BOUND_MS, output
    assert run["answers_in_log"] >= 0.9 * run["wrk_requests"], output
