"""The Grafana dashboards, as code: `python -m cluster.generate` writes grafana/dashboards/*.json
from render() (cluster/monitoring_config.py), with the other files that follow the description.

Every panel names the fixed datasource uid, carries a unit, uses `$__rate_interval` in its rates,
and every dashboard has `$job` and `$instance` variables. Ratios are written so a panel shows 0,
not "no data", when the numerator has no series yet (no error so far is a fact worth a line).
tests/grafana/ checks the JSON is what this module renders, and that every panel's queries return
data from the local cluster's Prometheus; tests/description/test_monitoring.py that the services
dashboard has a row per service of the description.
"""

from __future__ import annotations

import json
from typing import Any

from services.common.description import names

DATASOURCE = {"type": "prometheus", "uid": "quartet-prometheus"}
RATE = "[$__rate_interval]"
# The `$job` choices of the services dashboard: every service of the description.
SERVICES = "|".join(names())


def _variable(name: str, query: str) -> dict[str, Any]:
    return {
        "name": name,
        "type": "query",
        "datasource": DATASOURCE,
        "query": {"query": query, "refId": name},
        "definition": query,
        "includeAll": True,
        "multi": True,
        "allValue": ".*",
        "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
        "refresh": 2,
        "sort": 1,
    }


def _panel(
    title: str, unit: str, *queries: tuple[str, str], description: str = ""
) -> dict[str, Any]:
    return {
        "type": "timeseries",
        "title": title,
        "description": description,
        "datasource": DATASOURCE,
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "options": {"legend": {"displayMode": "list", "placement": "bottom"}},
        "targets": [
            {"datasource": DATASOURCE, "expr": expr, "legendFormat": legend, "refId": chr(65 + i)}
            for i, (expr, legend) in enumerate(queries)
        ],
    }


def _row(title: str) -> dict[str, Any]:
    return {"type": "row", "title": title, "collapsed": False, "panels": []}


def _ratio(numerator: str, denominator: str, by: str) -> str:
    # `or ... * 0` gives the ratio a 0 series where the numerator has none yet.
    zero = f"sum by ({by}) ({denominator}) * 0"
    return f"(sum by ({by}) ({numerator}) or {zero}) / sum by ({by}) ({denominator})"


def _dashboard(
    uid: str, title: str, job_query: str, instance_query: str, panels: list[dict[str, Any]]
) -> dict[str, Any]:
    placed, x, y = [], 0, 0
    for index, panel in enumerate(panels, start=1):
        panel = {**panel, "id": index}
        if panel["type"] == "row":
            x, y = 0, y + (8 if x else 0)
            panel["gridPos"] = {"h": 1, "w": 24, "x": 0, "y": y}
            y += 1
        else:
            panel["gridPos"] = {"h": 8, "w": 12, "x": x, "y": y}
            x, y = (12, y) if x == 0 else (0, y + 8)
        placed.append(panel)
    return {
        "uid": uid,
        "title": title,
        "tags": ["quartet"],
        "timezone": "utc",
        "schemaVersion": 39,
        "version": 1,
        "editable": False,
        "refresh": "10s",
        "time": {"from": "now-30m", "to": "now"},
        "templating": {
            "list": [_variable("job", job_query), _variable("instance", instance_query)]
        },
        "panels": placed,
    }


def overview() -> dict[str, Any]:
    sel = 'job=~"$job",instance=~"$instance"'
    requests = f"rate(http_requests_total{{{sel}}}{RATE})"
    errors = f'rate(http_requests_total{{{sel},status=~"5.."}}{RATE})'
    limited = f'rate(http_requests_total{{{sel},status="429"}}{RATE})'
    refused = f"rate(quartet_admission_refused_total{{{sel}}}{RATE})"
    buckets = f"sum by (job, le) (rate(http_request_duration_seconds_bucket{{{sel}}}{RATE}))"
    return _dashboard(
        "quartet-overview",
        "Quartet: cluster overview",
        f'label_values(http_requests_total{{job=~"{SERVICES}"}}, job)',
        'label_values(http_requests_total{job=~"$job"}, instance)',
        [
            _panel("Requests per second", "reqps", (f"sum by (job) ({requests})", "{{job}}")),
            _panel("5xx ratio", "percentunit", (_ratio(errors, requests, "job"), "{{job}}")),
            _panel(
                "Latency p50 / p95 / p99",
                "s",
                (f"histogram_quantile(0.5, {buckets})", "{{job}} p50"),
                (f"histogram_quantile(0.95, {buckets})", "{{job}} p95"),
                (f"histogram_quantile(0.99, {buckets})", "{{job}} p99"),
            ),
            _panel(
                "429s from the services (in-flight caps)",
                "reqps",
                (f"sum by (job) ({limited}) or sum by (job) ({requests}) * 0", "{{job}}"),
            ),
            _panel("Instances up", "short", ('sum by (job) (up{job=~"$job"})', "{{job}}")),
            _panel(
                "Admission: concurrency limit and refusals",
                "short",
                (f"sum by (job) (quartet_admission_limit{{{sel}}})", "{{job}} limit"),
                (f"sum by (job) (quartet_admission_inflight{{{sel}}})", "{{job}} in flight"),
                (f"sum by (job) ({refused})", "{{job}} refused/s"),
                description="Each worker's adaptive concurrency limit, summed per service, the "
                "requests in flight under it, and the requests refused with 503 per second "
                "(docs/reliability.md, Admission control).",
            ),
        ],
    )


def gateway() -> dict[str, Any]:
    responses = f"rate(gateway_http_responses_total{RATE})"
    return _dashboard(
        "quartet-gateway",
        "Quartet: gateway",
        "label_values(nginx_up, job)",
        'label_values(up{job=~"$job"}, instance)',
        [
            _panel(
                "Requests per second",
                "reqps",
                (f'sum(rate(nginx_http_requests_total{{job=~"$job"}}{RATE}))', "nginx"),
                (f"sum by (listener) ({responses})", "{{listener}}"),
            ),
            _panel(
                "Connections",
                "short",
                ('sum(nginx_connections_active{job=~"$job"})', "active"),
                ('sum(nginx_connections_reading{job=~"$job"})', "reading"),
                ('sum(nginx_connections_writing{job=~"$job"})', "writing"),
                ('sum(nginx_connections_waiting{job=~"$job"})', "waiting"),
            ),
            _panel(
                "Responses by status",
                "reqps",
                (f"sum by (listener, status) ({responses})", "{{listener}} {{status}}"),
            ),
            _panel(
                "4xx and 5xx ratio",
                "percentunit",
                (
                    _ratio(
                        f'rate(gateway_http_responses_total{{status=~"4.."}}{RATE})',
                        responses,
                        "listener",
                    ),
                    "{{listener}} 4xx",
                ),
                (
                    _ratio(
                        f'rate(gateway_http_responses_total{{status=~"5.."}}{RATE})',
                        responses,
                        "listener",
                    ),
                    "{{listener}} 5xx",
                ),
            ),
            _panel(
                "Rate-limited (429) per second",
                "reqps",
                (
                    f'sum by (listener) (rate(gateway_http_responses_total{{status="429"}}{RATE}))'
                    f" or sum by (listener) ({responses}) * 0",
                    "{{listener}}",
                ),
            ),
        ],
    )


def redis() -> dict[str, Any]:
    sel = 'job=~"$job",instance=~"$instance"'
    return _dashboard(
        "quartet-redis",
        "Quartet: Redis shards",
        "label_values(redis_up, job)",
        'label_values(redis_up{job=~"$job"}, instance)',
        [
            _panel(
                "Commands per second",
                "ops",
                (
                    f"sum by (instance) (rate(redis_commands_processed_total{{{sel}}}{RATE}))",
                    "{{instance}}",
                ),
            ),
            _panel("Memory used", "bytes", (f"redis_memory_used_bytes{{{sel}}}", "{{instance}}")),
            _panel(
                "Keys per shard (ring balance)",
                "short",
                (f"sum by (instance) (redis_db_keys{{{sel}}})", "{{instance}}"),
            ),
            _panel(
                "Connected clients", "short", (f"redis_connected_clients{{{sel}}}", "{{instance}}")
            ),
            _panel(
                "Evictions per second",
                "ops",
                (f"rate(redis_evicted_keys_total{{{sel}}}{RATE})", "{{instance}}"),
            ),
        ],
    )


def mysql() -> dict[str, Any]:
    sel = 'job=~"$job",instance=~"$instance"'
    return _dashboard(
        "quartet-mysql",
        "Quartet: MySQL",
        "label_values(mysql_up, job)",
        'label_values(mysql_up{job=~"$job"}, instance)',
        [
            _panel(
                "Queries per second",
                "qps",
                (f"rate(mysql_global_status_queries{{{sel}}}{RATE})", "queries"),
            ),
            _panel(
                "Connections against the maximum",
                "short",
                (f"mysql_global_status_threads_connected{{{sel}}}", "connected"),
                (f"mysql_global_variables_max_connections{{{sel}}}", "max_connections"),
            ),
            _panel(
                "Slow queries per second",
                "qps",
                (f"rate(mysql_global_status_slow_queries{{{sel}}}{RATE})", "slow"),
            ),
        ],
    )


def services() -> dict[str, Any]:
    sel = 'job=~"$job",instance=~"$instance"'
    lookups = f"rate(recommender_cache_lookups_total{{{sel}}}{RATE})"
    return _dashboard(
        "quartet-services",
        "Quartet: services",
        f'label_values(up{{job=~"{SERVICES}"}}, job)',
        'label_values(up{job=~"$job"}, instance)',
        [
            _row("counter"),
            _panel(
                "Visits not yet in Redis",
                "short",
                (f"sum(counter_pending_visits{{{sel}}})", "pending"),
            ),
            _panel(
                "Flush lag",
                "s",
                (f"max by (target) (counter_flush_lag_seconds{{{sel}}})", "{{target}}"),
            ),
            _row("banner"),
            _panel(
                "Banner picks by rule",
                "reqps",
                (f"sum by (rule) (rate(banner_picks_total{{{sel}}}{RATE}))", "{{rule}}"),
            ),
            _panel(
                "Gift codes left in the pool",
                "short",
                (
                    f"max by (campaign) (banner_gift_codes_available{{{sel}}})",
                    "campaign {{campaign}}",
                ),
            ),
            _row("recommender"),
            _panel(
                "Cache answers by level",
                "percentunit",
                (
                    f"sum by (result) ({lookups}) / ignoring (result) group_left sum({lookups})",
                    "{{result}}",
                ),
            ),
            _row("aggregator"),
            _panel(
                "Upstream calls by outcome",
                "reqps",
                (
                    "sum by (upstream, outcome)"
                    f" (rate(aggregator_upstream_requests_total{{{sel}}}{RATE}))",
                    "{{upstream}} {{outcome}}",
                ),
            ),
        ],
    )


DASHBOARDS = {
    "overview": overview,
    "gateway": gateway,
    "redis": redis,
    "mysql": mysql,
    "services": services,
}


def render() -> dict[str, str]:
    return {
        f"{name}.json": json.dumps(build(), indent=2) + "\n" for name, build in DASHBOARDS.items()
    }
