"""A frame from a stand-in Prometheus (httpx.MockTransport answering each query from a table):
what each answer becomes on screen, what is red and why, and the client's errors."""

from __future__ import annotations

import io
import math
from collections.abc import Callable

import httpx
import pytest
from rich.console import Console
from rich.table import Table

from cluster.monitor import frame, queries, units
from cluster.monitor.prometheus import BadAnswer, Prometheus, Unreachable, parse_vector
from cluster.monitor.queries import Query
from cluster.monitor.snapshot import Snapshot, take
from services.common.description import names
from tests.monitor import frame_text

URL = "http://prometheus.test:9090"
AT = 1_796_000_000.0
Series = list[tuple[dict[str, str], float]]


def _healthy() -> dict[Query, Series]:
    """Answers as a running two-instance cluster gives them, one number per service."""
    per_job = {name: float(i + 1) for i, name in enumerate(names())}
    shards = ("redis_7070", "redis_7071")
    return {
        queries.INSTANCES_UP: [({"job": j}, 2) for j in (*names(), "gateway")],
        queries.INSTANCES_EXPECTED: [({"job": j}, 2) for j in (*names(), "gateway")],
        queries.REQUESTS: [({"job": j}, 10 * v) for j, v in per_job.items()],
        queries.ERROR_RATIO: [({"job": j}, v / 100) for j, v in per_job.items()],
        queries.P50: [({"job": j}, v / 1000) for j, v in per_job.items()],
        queries.P95: [({"job": j}, 5 * v / 1000) for j, v in per_job.items()],
        queries.P99: [({"job": j}, math.nan) for j in per_job],  # no requests in its window
        queries.GATEWAY_RESPONSES: [({"listener": "public"}, 40.0), ({"listener": "internal"}, 2)],
        queries.GATEWAY_LIMITED: [({"listener": "public"}, 10.0), ({"listener": "internal"}, 0)],
        queries.GATEWAY_LIMITED_RATIO: [
            ({"listener": "public"}, 0.25),
            ({"listener": "internal"}, 0),
        ],
        queries.GATEWAY_SERVER_ERRORS: [
            ({"listener": "public"}, 1.0),
            ({"listener": "internal"}, 0),
        ],
        queries.GATEWAY_SERVER_ERROR_RATIO: [
            ({"listener": "public"}, 0.025),
            ({"listener": "internal"}, 0),
        ],
        queries.CACHE_ANSWERS: [({"result": "HIT-L1"}, 6.0), ({"result": "MISS"}, 2.0)],
        queries.PENDING_VISITS: [({}, 12)],
        queries.FLUSH_LAG: [({"target": t}, 0.0) for t in (*shards, "mysql")],
        queries.LEDGER_BACKLOG: [({"shard": s}, 2048) for s in shards],
        queries.LEDGER_LIMIT: [({}, 64 * 1024**2)],
        queries.GIFT_CODES: [({"campaign": "1002"}, 97)],
        queries.SHARD_SCRAPED: [({"instance": s}, 1) for s in shards],
        queries.SHARD_UP: [({"instance": s}, 1) for s in shards],
        queries.SHARD_MEMORY: [({"instance": s}, 2 * 1024**2) for s in shards],
        queries.SHARD_MEMORY_LIMIT: [({"instance": s}, 256 * 1024**2) for s in shards],
        queries.SHARD_MEMORY_RATIO: [({"instance": s}, 2 / 256) for s in shards],
        queries.ALERTS: [
            ({"alertname": "Watchdog", "alertstate": "firing", "severity": "none"}, 1)
        ],
        queries.ALERTS_SINCE: [({"alertname": "Watchdog", "severity": "none"}, AT - 60)],
    }


RECORDED = sorted({name for q in queries.ALL.values() for name in q.recorded})


def _transport(
    answers: dict[Query, Series],
    asked: list[httpx.Request] | None = None,
    recorded: list[str] = RECORDED,
) -> httpx.MockTransport:
    by_expr = {q.expr: series for q, series in answers.items()}

    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/api/v1/rules":
            rules = [{"name": name, "type": "recording"} for name in recorded]
            body = {"status": "success", "data": {"groups": [{"name": "g", "rules": rules}]}}
            return httpx.Response(200, json=body)
        if asked is not None:
            asked.append(request)
        series = by_expr.get(request.url.params["query"], [])
        result = [{"metric": labels, "value": [AT, str(value)]} for labels, value in series]
        data = {"resultType": "vector", "result": result}
        return httpx.Response(200, json={"status": "success", "data": data})

    return httpx.MockTransport(handle)


def _snapshot(answers: dict[Query, Series]) -> Snapshot:
    return take(Prometheus(URL, transport=_transport(answers)), AT)


def _text(snapshot: Snapshot) -> str:
    console = Console(file=io.StringIO(), width=200, record=True)
    console.print(frame.frame(snapshot))
    return console.export_text()


def _styles(table: Table) -> list[str | None]:
    return [str(row.style) if row.style else None for row in table.rows]


def test_every_query_of_a_frame_is_asked_at_the_frames_instant() -> None:
    asked: list[httpx.Request] = []
    take(Prometheus(URL, transport=_transport(_healthy(), asked)), AT)
    assert {r.url.params["query"] for r in asked} == {q.expr for q in queries.ALL.values()}
    assert {r.url.params["time"] for r in asked} == {f"{AT:.3f}"}


def test_the_frame_shows_each_answer() -> None:
    answers = _healthy()
    text = _text(_snapshot(answers))
    assert frame_text.instant(text) == AT
    rows = {row["service"]: row for row in frame_text.table(text, "services")}
    assert list(rows) == list(names())
    for labels, rate in answers[queries.REQUESTS]:
        row = rows[labels["job"]]
        assert row["up"] == "2/2"
        assert frame_text.shows(row["req/s"], rate)
        assert frame_text.shows(row["5xx"], rate / 1000)
        assert frame_text.shows(row["p95"], rate / 2000)
        assert row["p99"] == frame_text.DASH  # NaN is no number, not 0
    public, internal = (
        next(r for r in frame_text.table(text, "gateway") if r["listener"] == name)
        for name in ("public", "internal")
    )
    assert (public["resp/s"], public["429/s"], public["429"]) == ("40.0", "10.0", "25.0 %")
    assert (public["5xx/s"], public["5xx"]) == ("1.00", "2.5 %")
    assert (internal["429/s"], internal["5xx/s"], internal["5xx"]) == ("0", "0", "0 %")
    (cache,) = frame_text.table(text, "recommender")
    assert (cache["L1"], cache["L2"], cache["miss"], cache["per s"]) == (
        "75.0 %",
        "0 %",
        "25.0 %",
        "8.00",
    )
    assert "counter: 12 visits not yet in Redis" in text
    flushes = {row["flush to"]: row for row in frame_text.table(text, "counter")}
    assert list(flushes) == ["redis_7070", "redis_7071", "mysql"]  # the ledger's target last
    assert flushes["redis_7070"]["ledger backlog of 64.0 MiB"] == "2.0 KiB"
    assert flushes["mysql"]["ledger backlog of 64.0 MiB"] == frame_text.DASH
    assert {r["failed (5 m)"] for r in flushes.values()} == {"0"}  # no failure counter yet
    shards = frame_text.table(text, "redis shards")
    assert [(s["state"], s["memory"], s["limit"], s["used"]) for s in shards] == [
        ("up", "2.0 MiB", "256.0 MiB", "0.8 %")
    ] * 2
    assert frame_text.table(text, "gift codes") == [{"campaign": "1002", "codes": "97"}]
    assert frame_text.table(text, "alerts")[0]["alert"] == "none firing"
    assert "Watchdog firing" in text


def test_a_service_short_of_instances_or_without_targets_is_red() -> None:
    first, _no_target, *others = names()
    answers = _healthy()
    answers[queries.INSTANCES_UP] = [({"job": first}, 1), *[({"job": j}, 2) for j in others]]
    answers[queries.INSTANCES_EXPECTED] = [({"job": j}, 2) for j in (first, *others)]
    snapshot = _snapshot(answers)
    table = frame.services(snapshot)
    assert _styles(table) == ["red", "red", *[None] * len(others)]
    rows = frame_text.table(_text(snapshot), "services")
    assert [r["up"] for r in rows[:2]] == ["1/2", "0/0"]


def test_a_firing_alert_reddens_the_rows_it_names() -> None:
    answers = _healthy()
    shard_full = {
        "alertname": "RedisShardNearlyFull",
        "severity": "warning",
        "instance": "redis_7071",
    }
    slow = {"alertname": "ServiceHighLatency", "severity": "warning", "job": names()[1]}
    answers[queries.ALERTS] = [
        ({**shard_full, "alertstate": "firing"}, 1),
        ({**slow, "alertstate": "pending"}, 1),
    ]
    answers[queries.ALERTS_SINCE] = [(shard_full, AT - 125)]
    snapshot = _snapshot(answers)
    assert _styles(frame.shards(snapshot)) == [None, "red"]
    assert set(_styles(frame.services(snapshot))) == {None}  # pending is not firing yet
    text = _text(snapshot)
    alerts = frame_text.table(text, "alerts")
    assert [(a["alert"], a["state"], a["where"]) for a in alerts] == [
        ("RedisShardNearlyFull", "firing", "instance=redis_7071"),
        ("ServiceHighLatency", "pending", f"job={names()[1]}"),
    ]
    assert alerts[0]["since"] == frame.stamp(AT - 125)[11:19]
    assert alerts[1]["since"] == units.NONE
    # Watchdog is not among them: it is not firing, and that is news.
    assert "Watchdog NOT firing" in text


def test_the_gift_pools_closest_to_empty_are_shown_first() -> None:
    answers = _healthy()
    pools = {str(1001 + i): float(50 - i) for i in range(frame.GIFT_POOLS_SHOWN + 3)}
    answers[queries.GIFT_CODES] = [({"campaign": c}, left) for c, left in pools.items()]
    text = _text(_snapshot(answers))
    shown = frame_text.table(text, "gift codes")
    lowest = sorted(pools, key=pools.__getitem__)[: frame.GIFT_POOLS_SHOWN]
    assert [r["campaign"] for r in shown] == lowest
    assert "and 3 more campaigns" in text


def _failing(respond: Callable[[httpx.Request], httpx.Response]) -> Prometheus:
    return Prometheus(URL, transport=httpx.MockTransport(respond))


def test_a_query_prometheus_refuses_is_a_bad_answer_naming_it() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        body = {"status": "error", "errorType": "bad_data", "error": "parse error"}
        return httpx.Response(400, json=body)

    with pytest.raises(BadAnswer, match=r"refused the query 'up': parse error"):
        _failing(refuse).query("up", AT)


def test_another_server_on_the_port_is_a_bad_answer() -> None:
    with pytest.raises(BadAnswer, match=r"answered 404 .* not JSON: is it Prometheus\?"):
        _failing(lambda request: httpx.Response(404, text="<html>")).query("up", AT)


def test_no_connection_is_unreachable_in_one_line() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("[Errno 111] Connection refused", request=request)

    with pytest.raises(Unreachable) as caught:
        _failing(refuse).query("up", AT)
    assert (
        str(caught.value) == f"Prometheus at {URL} is not answering: [Errno 111] Connection refused"
    )


def test_a_scalar_and_nan_parse() -> None:
    scalar = {"status": "success", "data": {"resultType": "scalar", "result": [AT, "3"]}}
    assert [s.value for s in parse_vector(URL, "3", scalar)] == [3.0]
    nan = {"resultType": "vector", "result": [{"metric": {"job": "x"}, "value": [AT, "NaN"]}]}
    assert [s.value for s in parse_vector(URL, "q", {"status": "success", "data": nan})] == [None]


def test_a_series_this_prometheus_does_not_record_is_no_number_and_named() -> None:
    # A Prometheus started before a rule was added: no zero-filled 429/s, and a note saying why.
    missing = "listener:gateway_http_responses_429:rate5m"
    recorded = [name for name in RECORDED if name != missing]
    asked: list[httpx.Request] = []
    prometheus = Prometheus(URL, transport=_transport(_healthy(), asked, recorded))
    snapshot = take(prometheus, AT)
    assert snapshot.unrecorded == [missing]
    assert all(missing not in r.url.params["query"] for r in asked)
    text = _text(snapshot)
    assert "not recorded by this Prometheus (its rules predate prometheus/rules/" in text
    assert missing in text
    public = next(r for r in frame_text.table(text, "gateway") if r["listener"] == "public")
    assert (public["429/s"], public["429"]) == (frame_text.DASH, "25.0 %")
