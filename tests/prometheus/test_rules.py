"""The monitoring configuration: promtool's checks and unit tests, a runbook and a unit test
for every alert, and, on the running cluster, every target up and the gateway's 429s counted."""

from __future__ import annotations

import asyncio
import re
import shutil
import subprocess
import time
from pathlib import Path

import httpx
import pytest
import yaml

from tests.support.cluster import RunningCluster

PROMETHEUS = Path(__file__).resolve().parents[2] / "prometheus"
RUNBOOKS = (Path(__file__).resolve().parents[2] / "docs" / "runbooks.md").read_text()
PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"


def _promtool(*args: str) -> str:
    result = subprocess.run(
        [PROMTOOL, *args], capture_output=True, text=True, check=False, cwd=PROMETHEUS, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def _alerts() -> list[str]:
    groups = yaml.safe_load((PROMETHEUS / "rules" / "alerts.yml").read_text())["groups"]
    return [rule["alert"] for group in groups for rule in group["rules"]]


def test_promtool_checks_the_config_and_the_rules() -> None:
    assert "SUCCESS" in _promtool("check", "config", "prometheus.yml")
    assert "SUCCESS" in _promtool("check", "rules", "rules/recording.yml", "rules/alerts.yml")


def test_promtool_unit_tests_pass() -> None:
    assert "SUCCESS" in _promtool("test", "rules", "tests/alerts.test.yml")


@pytest.mark.parametrize("alert", _alerts())
def test_every_alert_has_a_unit_test_a_runbook_and_the_mixin_fields(alert: str) -> None:
    tests = (PROMETHEUS / "tests" / "alerts.test.yml").read_text()
    assert f"alertname: {alert}" in tests
    assert f"\n## {alert}\n" in RUNBOOKS
    groups = yaml.safe_load((PROMETHEUS / "rules" / "alerts.yml").read_text())["groups"]
    rule = next(r for g in groups for r in g["rules"] if r["alert"] == alert)
    assert re.fullmatch(r"[A-Z][A-Za-z]+", alert)
    assert rule["labels"]["severity"] in {"critical", "warning", "none"}
    assert {"summary", "description", "runbook_url"} <= set(rule["annotations"])
    assert rule["annotations"]["runbook_url"] == f"docs/runbooks.md#{alert.lower()}"
    assert "for" in rule or alert == "Watchdog"


def test_the_required_alerts_exist() -> None:
    assert set(_alerts()) >= {
        "ServiceHighErrorRatio",
        "ServiceHighLatency",
        "GatewayRateLimitingHigh",
        "InstanceDown",
        "RedisShardDown",
        "MySQLDown",
        "CounterFlushBacklog",
        "AggregatorUpstreamFailing",
        "Watchdog",
    }


async def _query(client: httpx.AsyncClient, expr: str) -> list[dict[str, object]]:
    response = await client.get("/api/v1/query", params={"query": expr})
    assert response.status_code == 200, response.text
    result: list[dict[str, object]] = response.json()["data"]["result"]
    return result


async def test_every_target_of_the_local_cluster_is_up(cluster: RunningCluster) -> None:
    url = f"http://127.0.0.1:{cluster.topo.prometheus_port}"
    expected = {
        "counter",
        "banner",
        "recommender",
        "aggregator",
        "gateway",
        "redis",
        "mysql",
        "prometheus",
    }
    async with httpx.AsyncClient(base_url=url) as client:
        deadline = time.monotonic() + 40
        while True:
            up = await _query(client, "up")
            states = {(r["metric"]["job"], r["metric"]["instance"]): r["value"][1] for r in up}  # type: ignore[index]
            if {job for job, _ in states} >= expected and set(states.values()) == {"1"}:
                break
            assert time.monotonic() < deadline, states
            await asyncio.sleep(1)
    # Two of each service, both shards by their stable names, both gateway exporters.
    assert sum(job == "counter" for job, _ in states) == 2
    assert {i for j, i in states if j == "redis"} == set(cluster.topo.shard_names)
    assert sum(job == "gateway" for job, _ in states) == 2


PUBLIC_429 = 'gateway_http_responses_total{listener="public",status="429"}'


async def _mtail_429s(client: httpx.AsyncClient) -> float:
    """What mtail has counted so far: the truth Prometheus scrapes, read at the source."""
    response = await client.get("/metrics")
    assert response.status_code == 200, response.text
    found = re.search(rf"^{re.escape(PUBLIC_429)} (\S+)$", response.text, re.M)
    return float(found[1]) if found else 0.0


async def _prometheus_429s(client: httpx.AsyncClient) -> float:
    result = await _query(client, f"sum({PUBLIC_429})")
    return float(result[0]["value"][1]) if result else 0.0  # type: ignore[index]


async def test_the_gateways_429s_reach_prometheus(cluster: RunningCluster) -> None:
    mtail = httpx.AsyncClient(base_url=f"http://127.0.0.1:{cluster.topo.mtail_port}")
    prometheus = httpx.AsyncClient(base_url=f"http://127.0.0.1:{cluster.topo.prometheus_port}")
    async with mtail, prometheus:
        # Earlier tests' 429s are in the totals: count from what mtail holds once it has read
        # every line logged so far (two reads a second apart agree).
        deadline = time.monotonic() + 20
        before, previous = await _mtail_429s(mtail), -1.0
        while before != previous:
            assert time.monotonic() < deadline, "mtail's count does not settle"
            await asyncio.sleep(1)
            before, previous = await _mtail_429s(mtail), before
        # Over 8 connections at once: over the public rate even on a loaded machine.
        limits = httpx.Limits(max_connections=8)
        async with httpx.AsyncClient(base_url=cluster.gateway, limits=limits, timeout=30) as c:
            answers = await asyncio.gather(*(c.get("/visits/prom-429") for _ in range(250)))
        refused = [r.status_code for r in answers].count(429)
        assert refused > 0
        # mtail follows the log file, and Prometheus scrapes it every 10 s (a scrape can catch
        # part of the burst): wait until both hold exactly this burst's 429s on top of `before`.
        expected = before + refused
        deadline = time.monotonic() + 40
        counted = (await _mtail_429s(mtail), await _prometheus_429s(prometheus))
        while counted != (expected, expected):
            assert max(counted) <= expected, f"{counted} counted, {expected} expected"
            assert time.monotonic() < deadline, f"{counted} counted, {expected} expected"
            await asyncio.sleep(1)
            counted = (await _mtail_429s(mtail), await _prometheus_429s(prometheus))
