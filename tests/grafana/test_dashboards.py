"""The Grafana dashboards: generated, linted, and every panel's queries answered with data by the
local cluster's Prometheus after a short load (Grafana itself runs in compose and Kubernetes)."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import re
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest

from tests.support.cluster import RunningCluster

GRAFANA = Path(__file__).resolve().parents[2] / "grafana"
DASHBOARDS = sorted((GRAFANA / "dashboards").glob("*.json"))


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("dashboards", GRAFANA / "dashboards.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _load(path: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(path.read_text())
    return loaded


def _panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    return [p for p in dashboard["panels"] if p["type"] != "row"]


def test_the_committed_dashboards_are_what_the_generator_writes() -> None:
    rendered = _generator().render()
    assert sorted(rendered) == [p.name for p in DASHBOARDS]
    for path in DASHBOARDS:
        assert path.read_text() == rendered[path.name], (
            f"run python -m cluster.generate ({path.name})"
        )


def test_the_five_dashboards_the_cluster_needs_exist() -> None:
    assert {p.stem for p in DASHBOARDS} == {"overview", "gateway", "redis", "mysql", "services"}


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.stem)
def test_lint(path: Path) -> None:
    dashboard = _load(path)
    assert dashboard["uid"].startswith("quartet-")
    assert dashboard["editable"] is False
    assert {v["name"] for v in dashboard["templating"]["list"]} >= {"job", "instance"}
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in _panels(dashboard):
        assert panel["datasource"] == {"type": "prometheus", "uid": "quartet-prometheus"}
        assert panel["fieldConfig"]["defaults"]["unit"], panel["title"]
        assert set(panel["gridPos"]) == {"h", "w", "x", "y"}
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            expr = target["expr"]
            assert "$job" in expr or "$instance" in expr or "gateway_http" in expr, expr
            for window in re.findall(r"\[([^\]]+)\]", expr):
                assert window == "$__rate_interval", expr


def _concrete(expr: str) -> str:
    return expr.replace("$job", ".*").replace("$instance", ".*").replace("$__rate_interval", "1m")


async def _traffic(cluster: RunningCluster) -> None:
    """A little of every kind of request, so every panel has something to show."""
    admin = {"Authorization": f"Bearer {cluster.admin_token}"}
    async with httpx.AsyncClient(base_url=cluster.gateway, timeout=10) as client:
        for _ in range(3):
            await client.post("/visits/grafana")
            await client.get("/visits/grafana")
            await client.get("/campaigns/1002")
            await client.get("/recommend/7")
            await client.get("/batch-recommend", params={"user_ids": "1,2,3"})
            await client.get("/api/smart", params={"timeout": 1000})
            await client.get("/nothing-here")
        async with httpx.AsyncClient(base_url=cluster.internal, timeout=10) as internal:
            # Minting is an admin route: the internal listener's.
            await internal.post("/api/campaigns/1016/gift-codes", json={"count": 3}, headers=admin)
        await client.get("/api/campaigns/1016/banner")
        await client.post("/api/campaigns/1016/gift-code")
        for _ in range(200):  # over the public rate: some 429s
            await client.get("/visits/grafana-burst")


async def _empty_panels(prometheus: httpx.AsyncClient) -> list[str]:
    """Every dashboard variable and panel query that Prometheus answers with no data."""
    empty: list[str] = []
    for path in DASHBOARDS:
        dashboard = _load(path)
        for variable in dashboard["templating"]["list"]:
            match = re.fullmatch(r"label_values\((.+), (\w+)\)", variable["definition"])
            assert match, variable["definition"]
            series, label = _concrete(match[1]), match[2]
            values = await prometheus.get(
                f"/api/v1/label/{label}/values", params={"match[]": series}
            )
            if not values.json()["data"]:
                empty.append(f"{path.stem}: ${variable['name']}")
        for panel in _panels(dashboard):
            for target in panel["targets"]:
                answer = await prometheus.get(
                    "/api/v1/query", params={"query": _concrete(target["expr"])}
                )
                body = answer.json()
                if body.get("status") != "success" or not body["data"]["result"]:
                    empty.append(f"{path.stem}: {panel['title']} [{target['refId']}]: {body}")
    return empty


async def test_every_panel_returns_data(cluster: RunningCluster) -> None:
    # Traffic, then the queries again until every panel has data: a rate needs two scrapes (10 s
    # apart) in its window, so this takes one to three scrape intervals; 60 s is the deadline.
    url = f"http://127.0.0.1:{cluster.topo.prometheus_port}"
    deadline = asyncio.get_running_loop().time() + 60
    async with httpx.AsyncClient(base_url=url) as prometheus:
        while True:
            await _traffic(cluster)
            empty = await _empty_panels(prometheus)
            if not empty or asyncio.get_running_loop().time() > deadline:
                break
            await asyncio.sleep(2)  # the poll interval: a scrape is every 10 s
    assert not empty, "\n".join(empty)
