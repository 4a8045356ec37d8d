"""The monitor asks nothing of its own where the repository already knows how: every recorded name
it reads is recorded, every expression it borrows is still in the alert or dashboard it names, and
none recomputes what a recording rule records."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from cluster.monitor import queries
from cluster.monitor.queries import Query

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "prometheus" / "rules"
RECORDED_NAME = re.compile(r"\b[a-z_]+:[a-z0-9_]+:[a-z0-9_]+\b")


def _rules(file: str) -> list[dict[str, str]]:
    groups = yaml.safe_load((RULES / file).read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def _flat(expr: str) -> str:
    return " ".join(expr.split())


def _dashboard_exprs(stem: str) -> list[str]:
    """A dashboard's panel queries without its $job/$instance choices, over the rules' window."""
    dashboard = json.loads((ROOT / "grafana" / "dashboards" / f"{stem}.json").read_text())
    exprs = []
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            expr = re.sub(r'(job=~"\$job"|instance=~"\$instance"),?', "", target["expr"])
            expr = expr.replace("{}", "").replace("$__rate_interval", queries.WINDOW)
            exprs.append(_flat(expr))
    return exprs


RECORDED = {rule["record"]: _flat(rule["expr"]) for rule in _rules("recording.yml")}
ALERTS = {rule["alert"]: _flat(rule["expr"]) for rule in _rules("alerts.yml")}
BY_SOURCE = {
    kind: {name: q for name, q in queries.ALL.items() if q.source.split(":")[0] == kind}
    for kind in ("recording", "alert", "dashboard", "prometheus", "monitor")
}


def test_every_query_names_a_known_source() -> None:
    assert sum(map(len, BY_SOURCE.values())) == len(queries.ALL) > 20


@pytest.mark.parametrize("name", sorted(BY_SOURCE["recording"]))
def test_a_recorded_series_is_recorded(name: str) -> None:
    used = RECORDED_NAME.findall(queries.ALL[name].expr)
    assert used, f"{name} reads no recorded series"
    assert set(used) <= set(RECORDED), f"not in prometheus/rules/recording.yml: {used}"


@pytest.mark.parametrize("name", sorted(BY_SOURCE["alert"]))
def test_a_borrowed_alert_expression_is_still_the_alerts(name: str) -> None:
    query: Query = queries.ALL[name]
    alert = query.source.removeprefix("alert:")
    assert alert in ALERTS, f"{name}: no alert {alert}"
    assert _flat(query.quoted) in ALERTS[alert], f"{name}: {alert} no longer says {query.quoted}"


@pytest.mark.parametrize("name", sorted(BY_SOURCE["dashboard"]))
def test_a_borrowed_panel_query_is_still_the_dashboards(name: str) -> None:
    query: Query = queries.ALL[name]
    stem = query.source.removeprefix("dashboard:")
    panels = _dashboard_exprs(stem)
    assert any(_flat(query.quoted) in expr for expr in panels), f"{name}: not in {stem}: {panels}"


def test_only_prometheus_own_series_are_read_raw() -> None:
    assert {q.expr for q in BY_SOURCE["prometheus"].values()} <= {"ALERTS", "ALERTS_FOR_STATE"}


def test_what_the_monitor_alone_asks_is_a_short_known_list() -> None:
    # A new query of the monitor's own should first be looked for in the rules and dashboards.
    assert set(BY_SOURCE["monitor"]) == {"FLUSH_FAILURES"}


@pytest.mark.parametrize("name", sorted(set(queries.ALL) - set(BY_SOURCE["recording"])))
def test_no_query_recomputes_a_recorded_series(name: str) -> None:
    expr = _flat(queries.ALL[name].expr)
    recomputed = [record for record, rule in RECORDED.items() if rule in expr]
    assert not recomputed, f"{name}: read {recomputed} instead of {expr}"
