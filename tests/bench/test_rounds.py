"""The rounds of `make bench` (bench/rounds.py) and the endpoints' targets (bench/endpoints.py)."""

from __future__ import annotations

import pytest
import rounds
from endpoints import CEILING, Endpoint, endpoint_named
from rounds import Row

from tests.bench.test_wrk_output import result


def test_the_ratio_is_to_the_mean_of_the_rounds_ceilings() -> None:
    assert rounds.round_ratio(result(3000), [result(4000), result(6000)]) == pytest.approx(0.6)
    assert rounds.round_ratio(result(3000), [result(0)]) == 0.0


def test_a_row_takes_the_median_of_its_rounds_and_judges_its_target() -> None:
    row = Row(endpoint_named("visit GET"))
    row.runs = [result(3000, p99=30), result(3600, p99=10), result(3300, p99=20)]
    row.ratios = [0.65, 0.80, 0.77]
    assert row.rps == 3300
    assert row.latency("p99") == 20
    assert row.ratio == 0.77
    assert row.meets_target is True
    row.ratios = [0.65, 0.69, 0.75]
    assert row.meets_target is False


def test_targets_by_group() -> None:
    # Issue 16's table.
    assert endpoint_named("banner page").target == 0.75
    assert endpoint_named("recommend uncached").target == 0.30
    assert endpoint_named("/api/first").target == 0.30
    assert endpoint_named("/api/smart").target == 0.35
    assert endpoint_named("page composition").target == 0.12
    assert endpoint_named("trivial (ceiling)").target is None
    # p99 at half rate: 25 ms, the fan-out 50 ms, the ceiling none.
    assert endpoint_named("recommend uncached").half_rate_target_ms == 25.0
    assert endpoint_named("page composition").half_rate_target_ms == 50.0
    assert endpoint_named("trivial (ceiling)").half_rate_target_ms is None
    with pytest.raises(KeyError):
        endpoint_named("nope")


def test_the_half_rate_p99_target() -> None:
    row = Row(endpoint_named("visit POST"))
    assert row.meets_half_rate_target is None
    row.half_rate = result(1000, p99=24.9)
    assert row.meets_half_rate_target is True
    row.half_rate = result(1000, p99=25.1)
    assert row.meets_half_rate_target is False


def test_the_endpoint_to_profile_is_the_furthest_below_its_target() -> None:
    rows = []
    for name, ratio in [
        ("visit GET", 0.8),
        ("recommend uncached", 0.2),
        ("page composition", 0.06),
    ]:
        row = Row(endpoint_named(name))
        row.ratios = [ratio]
        rows.append(row)
    # 0.06 / 0.12 is further below than 0.2 / 0.30.
    chosen = rounds.worst_against_target(rows)
    assert chosen is not None
    assert chosen.endpoint.name == "page composition"
    assert rounds.worst_against_target([]) is None


def test_a_rows_cores_are_the_median_of_its_runs_busiest_first() -> None:
    row = Row(CEILING)
    row.cpu = [{"counter": 1.2, "nginx": 0.2}, {"counter": 1.0, "nginx": 0.4, "redis": 0.001}]
    assert row.cpu_cores == {"counter": 1.1, "nginx": 0.3}
    assert list(row.cpu_cores) == ["counter", "nginx"]


def test_the_table_has_a_line_per_endpoint_and_marks_targets() -> None:
    ceiling = Row(CEILING, runs=[result(4000)])
    ok = Row(Endpoint("fast", "hot", "counter", "/x"), runs=[result(3000)], ratios=[0.75])
    slow = Row(Endpoint("slow", "hot", "counter", "/y"), runs=[result(2000)], ratios=[0.5])
    slow.half_rate = result(1000, p99=30)
    lines = rounds.format_table([ok, slow], ceiling).splitlines()
    assert len(lines) == 5
    assert lines[2].split()[:3] == ["trivial", "(ceiling)", "4000"]
    assert " yes " in lines[3]
    assert lines[4].split()[4] == "NO"
    assert lines[4].rstrip().endswith("NO")
