"""How the load test judges answers and runs (loadtest/outcomes.py), without locust."""

from __future__ import annotations

import json
from pathlib import Path

import outcomes
import pytest
from outcomes import ErrorRow, Outcome

NGINX_429 = (Path(__file__).resolve().parents[2] / "nginx" / "_errors" / "429.json").read_bytes()
NGINX_502 = (Path(__file__).resolve().parents[2] / "nginx" / "_errors" / "502.json").read_bytes()
NGINX_503 = (Path(__file__).resolve().parents[2] / "nginx" / "_errors" / "503.json").read_bytes()
NGINX_HTML_429 = (
    b"<html>\r\n<head><title>429 Too Many Requests</title></head>\r\n<body>\r\n"
    b"<center><h1>429 Too Many Requests</h1></center>\r\n<hr><center>nginx</center>\r\n"
)


def service_problem(status: int, detail: str) -> bytes:
    problem = {"type": "about:blank", "title": "x", "status": status, "detail": detail}
    return json.dumps({**problem, "request_id": "ab"}).encode()


def test_a_promised_status_with_a_good_body_is_ok() -> None:
    verdict = outcomes.classify(200, b'{"time": 120}', check=outcomes.check_first)
    assert verdict.outcome is Outcome.OK
    assert verdict.message == ""


def test_a_promised_status_with_a_bad_body_is_unexpected() -> None:
    verdict = outcomes.classify(200, b"{time: not json", check=outcomes.check_first)
    assert verdict.outcome is Outcome.UNEXPECTED
    assert verdict.message.startswith("bad body: ")


def test_only_the_listed_statuses_are_ok() -> None:
    assert outcomes.classify(201, b"{}", ok=(201,)).outcome is Outcome.OK
    assert outcomes.classify(200, b"{}", ok=(201,)).outcome is Outcome.UNEXPECTED


def test_the_gateways_429_is_expected_and_tagged() -> None:
    verdict = outcomes.classify(429, NGINX_429)
    assert verdict.outcome is Outcome.RATE_LIMITED
    assert verdict.message.startswith(outcomes.TAG_RATE_LIMITED)


def test_the_gateways_builtin_html_429_is_the_limit_too() -> None:
    assert outcomes.classify(429, NGINX_HTML_429).outcome is Outcome.RATE_LIMITED


def test_a_services_own_429_is_overload_not_the_gateway_limit() -> None:
    body = service_problem(429, "the service is at its cap of 2000 requests in flight")
    verdict = outcomes.classify(429, body, fanout=True)
    assert verdict.outcome is Outcome.UNEXPECTED
    assert "in flight" in verdict.message


def test_a_503_or_a_services_429_with_retry_after_is_a_refusal_not_an_error() -> None:
    admission = service_problem(503, "this instance is at its capacity; retry shortly")
    verdict = outcomes.classify(503, admission, retry_after=True)
    assert verdict.outcome is Outcome.REFUSED
    assert verdict.message.startswith(outcomes.TAG_REFUSED)
    assert "from a service" in verdict.message
    gateway = NGINX_503
    assert outcomes.classify(503, gateway, retry_after=True).outcome is Outcome.REFUSED
    cap = service_problem(429, "the service is at its cap of 2000 requests in flight")
    assert outcomes.classify(429, cap, retry_after=True).outcome is Outcome.REFUSED
    # Without saying when to come back, a 503 is a failure; the gateway's 429 stays its limit.
    assert outcomes.classify(503, admission).outcome is Outcome.UNEXPECTED
    assert outcomes.classify(429, NGINX_429, retry_after=True).outcome is Outcome.RATE_LIMITED


@pytest.mark.parametrize("status", [502, 504])
def test_the_aggregators_own_502_504_on_a_fanout_endpoint_is_upstream(status: int) -> None:
    verdict = outcomes.classify(status, service_problem(status, "all 3 calls failed"), fanout=True)
    assert verdict.outcome is Outcome.UPSTREAM
    assert verdict.message.startswith(outcomes.TAG_UPSTREAM)


def test_a_502_from_nginx_is_unexpected_even_on_a_fanout_endpoint() -> None:
    verdict = outcomes.classify(502, NGINX_502, fanout=True)
    assert verdict.outcome is Outcome.UNEXPECTED
    assert "(gateway)" in verdict.message


def test_a_services_502_elsewhere_is_unexpected() -> None:
    assert outcomes.classify(502, service_problem(502, "x")).outcome is Outcome.UNEXPECTED


def test_a_500_is_unexpected_and_shows_a_non_json_body() -> None:
    verdict = outcomes.classify(500, b"Internal Server Error")
    assert verdict.outcome is Outcome.UNEXPECTED
    assert "Internal Server Error" in verdict.message


def test_no_answer_is_unexpected() -> None:
    verdict = outcomes.classify(0, b"", error="ConnectionRefusedError(111)")
    assert verdict.outcome is Outcome.UNEXPECTED
    assert "ConnectionRefusedError" in verdict.message


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (
            {"page_id": "home", "visits": {"visits": 1}, "banner": {"banner_id": 1},
             "recommendations": {"user_id": 1}, "errors": {}},
            None,
        ),
        (
            {"page_id": "home", "visits": None, "banner": {"banner_id": 1},
             "recommendations": {"user_id": 1}, "errors": {"visits": "timeout"}},
            'parts missing: {"visits": "timeout"}',
        ),
        (
            {"page_id": "home", "visits": {"visits": 1}, "banner": None,
             "recommendations": {"user_id": 1}, "errors": {}},
            "parts missing: ['banner']",
        ),
        ({"title": "Not Found"}, "not a composed page"),
    ],
)  # fmt: skip
def test_a_composed_page_needs_every_part(body: object, problem: str | None) -> None:
    assert outcomes.check_page(json.dumps(body).encode()) == problem


def test_a_degraded_count_is_a_bad_answer() -> None:
    assert outcomes.check_visit_get(b'{"visits": 3, "served_via": "redis_7070"}') is None
    assert outcomes.check_visit_get(b'{"visits": 3, "served_via": "x", "degraded": true}')
    assert outcomes.check_visit_get(b'{"visits": "3"}')


def test_a_batch_with_unavailable_users_is_a_bad_answer() -> None:
    assert outcomes.check_batch(b'{"successful": 2, "failed": 0, "results": [{}, {}]}') is None
    assert outcomes.check_batch(b'{"successful": 1, "failed": 1, "results": [{}, {}]}')


def test_first_wants_exactly_a_time() -> None:
    assert outcomes.check_first(b'{"time": 0}') is None
    assert outcomes.check_first(b'{"time": 1, "x": 2}')
    assert outcomes.check_first(b'{"time": true}')
    assert outcomes.check_first(b"[1]")


def test_the_image_of_a_campaign_page() -> None:
    page = b'<main><img src="/images/image_425.png" alt="banner 425"></main>'
    assert outcomes.image_url(page) == "/images/image_425.png"
    assert outcomes.check_campaign_page(page) is None
    assert outcomes.image_url(b"<main></main>") is None
    assert outcomes.check_campaign_page(b"<main></main>")


def test_locusts_error_description_loses_its_method_and_name() -> None:
    described = "GET visitor: /x: [expected: rate-limited] 429"
    assert outcomes.error_message(described, "GET", "visitor: /x") == "[expected: rate-limited] 429"
    assert outcomes.error_message("other", "GET", "visitor: /x") == "other"


ROWS = [
    ErrorRow("GET", "visitor: /a", "CatchResponseError('[expected: rate-limited] 429 x')", 40),
    ErrorRow("GET", "api-client: /api/all", "[expected: upstream] 504 from the aggregator", 3),
    ErrorRow("GET", "reader: /recommend/{user_id}", "HTTP 503: a data store did not answer", 2),
    ErrorRow("GET", "visitor: /b", "ConnectionResetError(104)", 1),
]


def test_summarize_sorts_the_error_table_into_outcomes() -> None:
    summary = outcomes.summarize(1040, ROWS)
    assert (summary.rate_limited, summary.upstream, summary.unexpected) == (40, 3, 3)
    assert summary.served == 1000
    assert summary.ok == 1040 - 40 - 3 - 3
    assert summary.unexpected_rate == pytest.approx(0.003)
    assert summary.unexpected_by_message == {
        "GET reader: /recommend/{user_id}: HTTP 503: a data store did not answer": 2,
        "GET visitor: /b: ConnectionResetError(104)": 1,
    }


def test_refusals_are_counted_apart_and_fail_nothing() -> None:
    refused = [ErrorRow("GET", "reader: /r", "[expected: refused] 503 with Retry-After", 25)]
    summary = outcomes.summarize(100, refused)
    assert (summary.refused, summary.unexpected, summary.ok) == (25, 0, 75)
    assert summary.verdict(0)[0]


def test_the_threshold_is_a_percentage_of_the_served_requests() -> None:
    summary = outcomes.summarize(1040, ROWS)  # 3 unexpected of 1000 served: 0.3 %
    assert summary.verdict(1.0)[0]
    assert summary.verdict(0.3)[0]
    assert not summary.verdict(0.29)[0]


def test_a_zero_threshold_tolerates_nothing_unexpected_but_expected_answers_pass() -> None:
    assert not outcomes.summarize(1040, ROWS).verdict(0)[0]
    assert outcomes.summarize(1040, ROWS[:2]).verdict(0)[0]


def test_a_run_that_served_nothing_fails() -> None:
    only_429 = [ErrorRow("GET", "visitor: /a", "[expected: rate-limited] 429", 10)]
    passed, why = outcomes.summarize(10, only_429).verdict(100)
    assert not passed
    assert "no request" in why
    assert not outcomes.summarize(0, []).verdict(100)[0]


def test_locust_csv_files_are_read(tmp_path: Path) -> None:
    (tmp_path / "run_stats.csv").write_text(
        "Type,Name,Request Count,Failure Count,Median Response Time,Average Response Time,"
        "Min Response Time,Max Response Time,Average Content Size,Requests/s,Failures/s,"
        "50%,66%,75%,80%,90%,95%,98%,99%,99.9%,99.99%,100%\n"
        "GET,visitor: /a,10,1,3,4.1,1,9,100,2.0,0.1,3,4,4,5,6,7,8,9,9,9,9\n"
        "GET,reader: /recommend/{user_id},5,0,2,2.0,1,3,200,1.0,0.0,2,2,2,2,3,3,3,3,3,3,3\n"
        "POST,visitor: /visits/{page_id},4,0,2,2.0,1,3,50,1.0,0.0,2,2,2,2,3,3,3,3,3,3,3\n"
        ",Aggregated,19,1,3,3.0,1,9,120,4.0,0.1,3,3,4,4,5,6,7,9,9,9,9\n"
    )
    (tmp_path / "run_failures.csv").write_text(
        "Method,Name,Error,Occurrences\n"
        'GET,visitor: /a,"CatchResponseError(""[expected: rate-limited] 429 x"")",1\n'
    )
    stats = outcomes.read_stats_csv(tmp_path / "run_stats.csv")
    assert stats[0] == outcomes.StatsRow("GET", "visitor: /a", 10, 1, 3.0, 9.0)
    assert outcomes.requests_by_kind(stats) == {"visitor": 14, "reader": 5}
    failures = outcomes.read_failures_csv(tmp_path / "run_failures.csv")
    assert [f.outcome for f in failures] == [Outcome.RATE_LIMITED]


@pytest.mark.parametrize(
    ("check", "good", "bad"),
    [
        (outcomes.check_banner, b'{"banner_id": 7}', b'{"banner_id": "7"}'),
        (outcomes.check_recommend, b'{"recommendations": {}}', b'{"recommendations": []}'),
        (outcomes.check_accepted, b'{"status": "accepted"}', b'{"status": "queued"}'),
        (outcomes.check_invalidated, b'{"status": "invalidated"}', b'{"status": "accepted"}'),
        (outcomes.check_minted, b'{"minted": 10, "available": 10}', b'{"available": 10}'),
        (outcomes.check_gift_code, b'{"code": "ABCD"}', b'{"code": null}'),
    ],
)
def test_field_checks_accept_the_promised_shape_only(
    check: outcomes.Check, good: bytes, bad: bytes
) -> None:
    assert check(good) is None
    assert check(bad) is not None
    assert check(b"not json") is not None
    assert check(b"[]") is not None
