"""The pure part of `make bench` (bench/benchlib.py), and bench/wrk.lua driven by a real wrk
against a tiny local server."""

from __future__ import annotations

import shutil
import subprocess
import threading
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import benchlib
import pytest
from benchlib import Endpoint, Row, WrkResult

LUA = Path(__file__).resolve().parents[2] / "bench" / "wrk.lua"

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
    parsed = benchlib.parse_wrk(WRK_OUTPUT)
    assert parsed.requests == 3164
    assert parsed.rps == pytest.approx(3154.2, abs=0.1)
    assert parsed.latency_ms["p50"] == pytest.approx(2.297)
    assert parsed.latency_ms["p99"] == pytest.approx(12.655)
    assert parsed.non_2xx == 3
    assert parsed.socket_errors == 3
    assert parsed.bad_bodies == 4
    assert parsed.failures == [
        "3 answers with status >= 400",
        "socket errors: read 1, timeout 2",
        "4 answers without the expected body",
    ]


def test_wrk_output_without_the_line_is_an_error() -> None:
    with pytest.raises(ValueError, match="BENCH_JSON"):
        benchlib.parse_wrk("Running 2s test\nRequests/sec: 10\n")


def test_a_clean_run_has_no_failures_and_an_empty_one_has() -> None:
    assert result(1000).failures == []
    assert result(0).failures == ["no request completed"]


def test_the_ratio_is_to_the_mean_of_the_rounds_ceilings() -> None:
    assert benchlib.round_ratio(result(3000), [result(4000), result(6000)]) == pytest.approx(0.6)
    assert benchlib.round_ratio(result(3000), [result(0)]) == 0.0


def test_a_row_takes_the_median_of_its_rounds_and_judges_its_target() -> None:
    row = Row(benchlib.endpoint_named("visit GET"))
    row.runs = [result(3000, p99=30), result(3600, p99=10), result(3300, p99=20)]
    row.ratios = [0.65, 0.75, 0.72]
    assert row.rps == 3300
    assert row.latency("p99") == 20
    assert row.ratio == 0.72
    assert row.meets_target is True
    row.ratios = [0.65, 0.69, 0.75]
    assert row.meets_target is False


def test_targets_by_group() -> None:
    assert benchlib.endpoint_named("banner page").target == 0.70
    assert benchlib.endpoint_named("recommend uncached").target == 0.25
    assert benchlib.endpoint_named("/api/first").target == 0.30
    assert benchlib.endpoint_named("page composition").target == 0.30
    assert benchlib.endpoint_named("trivial (ceiling)").target is None
    # The 25 ms p99 at half rate is for every endpoint but the fan-out ones.
    assert benchlib.endpoint_named("recommend uncached").half_rate_target_ms == 25.0
    assert benchlib.endpoint_named("page composition").half_rate_target_ms is None
    with pytest.raises(KeyError):
        benchlib.endpoint_named("nope")


def test_the_half_rate_p99_target() -> None:
    row = Row(benchlib.endpoint_named("visit POST"))
    assert row.meets_half_rate_target is None
    row.half_rate = result(1000, p99=24.9)
    assert row.meets_half_rate_target is True
    row.half_rate = result(1000, p99=25.1)
    assert row.meets_half_rate_target is False


def test_pacing_delay() -> None:
    # 128 connections at 2,000 r/s: one request per connection every 64 ms, 4 of them waiting.
    assert benchlib.pacing_delay_ms(128, 2000, 4) == pytest.approx(60)
    assert benchlib.pacing_delay_ms(8, 10_000, 5) == 0.0


def test_recalibration_reaches_the_goal_when_latency_is_steady() -> None:
    connections, goal, latency = 128, 2000.0, 9.0
    delay = benchlib.pacing_delay_ms(connections, goal, 4.0)  # guessed latency 4 ms
    achieved = 1000 * connections / (delay + latency)
    delay = benchlib.recalibrate_delay_ms(connections, goal, delay, achieved)
    assert 1000 * connections / (delay + latency) == pytest.approx(goal)
    assert benchlib.recalibrate_delay_ms(connections, goal, 12.0, 0) == 12.0


def test_the_endpoint_to_profile_is_the_furthest_below_its_target() -> None:
    rows = []
    for name, ratio in [("visit GET", 0.8), ("recommend uncached", 0.2), ("/api/first", 0.2)]:
        row = Row(benchlib.endpoint_named(name))
        row.ratios = [ratio]
        rows.append(row)
    # 0.2 / 0.30 is further below than 0.2 / 0.25.
    chosen = benchlib.worst_against_target(rows)
    assert chosen is not None
    assert chosen.endpoint.name == "/api/first"
    assert benchlib.worst_against_target([]) is None


@pytest.mark.parametrize(
    ("frame", "area"),
    [
        ("recommend (services/recommender/api.py)", "services/recommender"),
        ("call (/work/main/services/common/requestctx.py:52)", "services/common"),
        ("run_asgi (uvicorn/protocols/http/httptools_impl.py)", "uvicorn"),
        ("_run_once (asyncio/base_events.py:1922)", "asyncio"),
        ("wait (threading.py)", "threading"),
        ("x (/usr/lib/python3.11/site-packages/redis/asyncio/client.py)", "redis"),
        ("x (/root/.pyenv/versions/3.11.7/lib/python3.11/json/decoder.py)", "json"),
        ('process 123:"gunicorn"', 'process 123:"gunicorn"'),
    ],
)
def test_frame_areas(frame: str, area: str) -> None:
    assert benchlib.frame_area(frame) == area


def test_collapsed_stacks_are_summarised() -> None:
    trunk = "<module> (gunicorn);run (asyncio/runners.py)"
    text = "\n".join(
        [
            f"{trunk};handle (services/recommender/api.py);execute (redis/asyncio/client.py) 60",
            f"{trunk};handle (services/recommender/api.py);dumps (orjson.py) 20",
            f"{trunk};send (uvicorn/protocols/http/httptools_impl.py) 20",
            "not a stack line",
        ]
    )
    summary = benchlib.summarize_collapsed(text)
    assert summary.samples == 100
    assert summary.self_by_area == [("redis", 0.6), ("orjson", 0.2), ("uvicorn", 0.2)]
    assert summary.top_inclusive[0] == ("handle (services/recommender/api.py)", 0.8)
    # The trunk (on every stack) is left out of the inclusive list.
    assert all("gunicorn" not in frame for frame, _ in summary.top_inclusive)
    assert summary.top_self[0] == ("execute (redis/asyncio/client.py)", 0.6)
    assert summary.top_project == [("handle (services/recommender/api.py)", 0.8)]
    assert benchlib.summarize_collapsed("").samples == 0


@pytest.mark.parametrize(
    ("cmdline", "group"),
    [
        ("/w/.venv/bin/python /w/.venv/bin/gunicorn -c python:services.common.gunicorn_conf "
         "--bind 127.0.0.1:8130 services.recommender.app:app", "recommender"),
        ("/w/.venv/bin/python /w/.venv/bin/gunicorn -c python:services.common.gunicorn_conf "
         "--bind 127.0.0.1:8110 services.counter.app:app", "counter"),
        ("/w/.venv/bin/python /w/.venv/bin/uvicorn services.worksim.app:app --port 8190",
         "worksim"),
        ("nginx: worker process", "nginx"),
        ("/usr/sbin/nginx -p /w/.run/nginx/ -c /w/.run/nginx/nginx.conf", "nginx"),
        ("/usr/bin/redis-server 127.0.0.1:7070", "redis"),
        ("/usr/sbin/mariadbd --no-defaults --port=3307", "mariadb"),
        ("/w/.venv/bin/python /w/.venv/bin/supervisord -c /w/.run/supervisord.conf",
         "supervisord"),
        ("/usr/bin/prometheus-redis-exporter --redis.addr x", "monitoring"),
        ("mtail -progs /w/prometheus/mtail", "monitoring"),
        ("wrk -t2 -c64 -d10s http://x", "wrk"),
        ("bash", "other"),
        ("", "other"),
    ],
)  # fmt: skip
def test_processes_are_grouped_by_their_part_of_the_stack(cmdline: str, group: str) -> None:
    assert benchlib.process_group(cmdline.split(" ")) == group


def test_cpu_cores_over_a_window() -> None:
    before = {"nginx": 10.0, "counter": 20.0, "redis": 5.0}
    after = {"nginx": 12.0, "counter": 32.0, "redis": 5.0, "wrk": 1.0}
    assert benchlib.cpu_cores(before, after, 10.0) == {"nginx": 0.2, "counter": 1.2, "wrk": 0.1}
    assert benchlib.cpu_cores(before, after, 0) == {}
    row = Row(benchlib.CEILING)
    row.cpu = [{"counter": 1.2, "nginx": 0.2}, {"counter": 1.0, "nginx": 0.4, "redis": 0.001}]
    assert row.cpu_cores == {"counter": 1.1, "nginx": 0.3}
    assert list(row.cpu_cores) == ["counter", "nginx"]


def test_the_table_has_a_line_per_endpoint_and_marks_targets() -> None:
    ceiling = Row(benchlib.CEILING, runs=[result(4000)])
    ok = Row(Endpoint("fast", "hot", "counter", "/x"), runs=[result(3000)], ratios=[0.75])
    slow = Row(Endpoint("slow", "hot", "counter", "/y"), runs=[result(2000)], ratios=[0.5])
    slow.half_rate = result(1000, p99=30)
    lines = benchlib.format_table([ok, slow], ceiling).splitlines()
    assert len(lines) == 5
    assert lines[2].split()[:3] == ["trivial", "(ceiling)", "4000"]
    assert " yes " in lines[3]
    assert lines[4].split()[4] == "NO"
    assert lines[4].rstrip().endswith("NO")


# --- bench/wrk.lua with a real wrk ----------------------------------------------------------------


class _Recorder(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    seen: ClassVar[Counter[tuple[str, str]]] = Counter()
    lock = threading.Lock()

    def _answer(self) -> None:
        with self.lock:
            self.seen[(self.command, self.path)] += 1
        body = b'{"errors":{}}' if self.path.startswith("/good") else b'{"errors":{"x":1}}'
        status = 500 if self.path.startswith("/fail") else 200
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = _answer
    do_POST = _answer

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    _Recorder.seen = Counter()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def wrk(url: str, *options: str) -> WrkResult:
    done = subprocess.run(
        ["wrk", "-t2", "-c4", "-d1s", "-s", str(LUA), url, "--", *options],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return benchlib.parse_wrk(done.stdout)


needs_wrk = pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is not installed")


@needs_wrk
def test_wrk_lua_counts_bodies_without_the_expected_text(server: str) -> None:
    good = wrk(f"{server}/good", 'expect="errors":{}')
    assert good.requests > 0
    assert good.bad_bodies == 0
    bad = wrk(f"{server}/bad", 'expect="errors":{}')
    assert bad.bad_bodies == bad.requests > 0


@needs_wrk
def test_wrk_lua_posts_and_counts_error_statuses(server: str) -> None:
    posted = wrk(f"{server}/fail", "method=POST")
    assert posted.non_2xx == posted.requests > 0
    assert {method for method, _ in _Recorder.seen} == {"POST"}


@needs_wrk
def test_wrk_lua_cold_ids_are_never_repeated(server: str) -> None:
    cold = wrk(server, "cold=1763900000000000", "threads=2")
    paths = [path for _, path in _Recorder.seen.elements()]
    assert len(paths) >= cold.requests > 0
    assert all(path.startswith("/recommend/17639") for path in paths)
    assert len(set(paths)) == len(paths)


@needs_wrk
def test_wrk_lua_delay_paces_the_load(server: str) -> None:
    # 4 connections, each waiting 100 ms on average: about 40 requests in the second.
    paced = wrk(f"{server}/good", "delay=100")
    assert 20 <= paced.requests <= 60
