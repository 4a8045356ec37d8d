"""The monitoring follows services/common/description.py: the generated regions of the Prometheus
files and the dashboards are fresh, every deployment's Prometheus scrapes every service under its
name, InstanceDown watches them all, and the services dashboard has a row for each."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from cluster import monitoring_config
from services.common.description import CONTAINER_PORT, names

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = ("prometheus/prometheus.yml", "prometheus/compose.yml", "prometheus/kubernetes.yml")


def _jobs(path: str) -> dict[str, dict[str, Any]]:
    config = yaml.safe_load((ROOT / path).read_text())
    return {job["job_name"]: job for job in config["scrape_configs"]}


@pytest.mark.parametrize("path", sorted(monitoring_config.generated()))
def test_the_generated_monitoring_files_are_fresh(path: str) -> None:
    current = (ROOT / path).read_text() if (ROOT / path).exists() else None
    assert current == monitoring_config.generated()[path], (
        f"{path} is missing or stale: run `python -m cluster.generate`"
    )


@pytest.mark.parametrize("path", CONFIGS)
def test_every_prometheus_config_scrapes_the_services_first_under_their_names(path: str) -> None:
    # Service jobs first, in the description's order; the infrastructure's jobs after them.
    assert list(_jobs(path))[: len(names())] == list(names()), (
        f"{path}: run `python -m cluster.generate`"
    )


def test_each_deployment_finds_a_service_where_it_runs() -> None:
    local = _jobs("prometheus/prometheus.yml")
    compose = _jobs("prometheus/compose.yml")
    kubernetes = _jobs("prometheus/kubernetes.yml")
    for name in names():
        assert local[name]["file_sd_configs"] == [{"files": [f"targets/{name}.json"]}]
        (dns,) = compose[name]["dns_sd_configs"]
        assert (dns["names"], dns["port"]) == ([name], CONTAINER_PORT)
        keep = kubernetes[name]["relabel_configs"][0]
        assert keep["source_labels"] == ["__meta_kubernetes_pod_label_app_kubernetes_io_name"]
        assert (keep["regex"], keep["action"]) == (name, "keep")


def test_instance_down_watches_every_service_and_the_gateway() -> None:
    groups = yaml.safe_load((ROOT / "prometheus/rules/alerts.yml").read_text())["groups"]
    (rule,) = (r for g in groups for r in g["rules"] if r.get("alert") == "InstanceDown")
    found = re.fullmatch(r'up\{job=~"([a-z|_-]+)"\} == 0', rule["expr"])
    assert found, rule["expr"]
    assert set(found[1].split("|")) == {*names(), "gateway"}


def test_the_dashboards_job_choice_is_every_service() -> None:
    services = json.loads((ROOT / "grafana/dashboards/services.json").read_text())
    (job,) = (v for v in services["templating"]["list"] if v["name"] == "job")
    assert job["definition"] == f'label_values(up{{job=~"{"|".join(names())}"}}, job)'


def test_the_services_dashboard_has_a_row_per_service() -> None:
    services = json.loads((ROOT / "grafana/dashboards/services.json").read_text())
    rows = [panel["title"] for panel in services["panels"] if panel["type"] == "row"]
    missing = [name for name in names() if name not in rows]
    assert missing == [], (
        f"grafana/dashboards.py, services(): add a `_row(name)` and its panels for {missing}"
    )
