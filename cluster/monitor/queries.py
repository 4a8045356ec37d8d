"""The PromQL of the monitor, one name per fact, each written first somewhere else.

A number on the monitor should be the number the alerts judge and the dashboards draw, so no
query is invented here where the repository already has one: a series recorded by
prometheus/rules/recording.yml is read by its name, and an expression an alert or a Grafana
panel already writes is taken as it is, with the recording rules' 5-minute window for the
panels' `$__rate_interval` (a monitor has no panel width to fit its window to). `source` says
where each one comes from and `quoted` what of it is found there: tests/monitor/test_queries.py
checks every recorded name is recorded, every quoted piece is still in its alert or dashboard,
and that no query recomputes what a recording rule records.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from services.common.description import names

# The jobs whose instances are counted: the services of the description, then the gateway (its
# nginx exporter and mtail). InstanceDown's selector is generated from the same list.
JOBS = (*names(), "gateway")
WINDOW = "5m"  # the recording rules' window
RECORDED_NAME = re.compile(r"\b[a-z_]+:[a-z0-9_]+:[a-z0-9_]+\b")  # level:metric:operations


@dataclass(frozen=True)
class Query:
    expr: str
    # "recording", "alert:<AlertName>", "dashboard:<file stem>", "prometheus" (its own series),
    # or "monitor" (asked only here)
    source: str
    # the piece of `expr` written in that alert or dashboard (the whole expression by default)
    piece: str = ""

    @property
    def quoted(self) -> str:
        return self.piece or self.expr

    @property
    def recorded(self) -> frozenset[str]:
        """The recorded series it reads."""
        return frozenset(RECORDED_NAME.findall(self.expr))


_INSTANCES = f'up{{job=~"{"|".join(JOBS)}"}}'
# "expected" is what Prometheus's service discovery found: file_sd targets locally (one per
# instance the cluster started), DNS in compose, pods in Kubernetes. The description has no
# instance count (QUARTET_INSTANCES, compose scale and k8s replicas decide it), so a service
# with no target at all shows 0/0, which the frame marks as down.
INSTANCES_UP = Query(f"sum by (job) ({_INSTANCES})", "alert:InstanceDown", _INSTANCES)
INSTANCES_EXPECTED = Query(f"count by (job) ({_INSTANCES})", "alert:InstanceDown", _INSTANCES)

REQUESTS = Query("job:http_requests:rate5m", "recording")
# `or ... * 0`: no 5xx series yet is a 0 % ratio, not a blank (the dashboards' convention).
ERROR_RATIO = Query(
    "job:http_requests_5xx:ratio_rate5m or job:http_requests:rate5m * 0", "recording"
)
P50 = Query("job:http_request_duration_seconds:p50_5m", "recording")
P95 = Query("job:http_request_duration_seconds:p95_5m", "recording")
P99 = Query("job:http_request_duration_seconds:p99_5m", "recording")

# All five from one evaluation of the recording rules, so the gateway's row adds up.
GATEWAY_RESPONSES = Query("listener:gateway_http_responses:rate5m", "recording")
_NO_RESPONSE_YET = " or listener:gateway_http_responses:rate5m * 0"
GATEWAY_LIMITED = Query(
    "listener:gateway_http_responses_429:rate5m" + _NO_RESPONSE_YET, "recording"
)
GATEWAY_LIMITED_RATIO = Query(
    "listener:gateway_http_responses_429:ratio_rate5m" + _NO_RESPONSE_YET, "recording"
)
GATEWAY_SERVER_ERRORS = Query(
    "listener:gateway_http_responses_5xx:rate5m" + _NO_RESPONSE_YET, "recording"
)
GATEWAY_SERVER_ERROR_RATIO = Query(
    "listener:gateway_http_responses_5xx:ratio_rate5m" + _NO_RESPONSE_YET, "recording"
)

CACHE_ANSWERS = Query(
    f"sum by (result) (rate(recommender_cache_lookups_total[{WINDOW}]))", "dashboard:services"
)

PENDING_VISITS = Query("sum(counter_pending_visits)", "dashboard:services")
FLUSH_LAG = Query("max by (target) (counter_flush_lag_seconds)", "alert:CounterFlushBacklog")
# No alert or panel counts failed flushes (the lag is what they watch); an operator asks how many
# failed lately, so: how many in the window. Absent until a first failure, which reads as 0.
FLUSH_FAILURES = Query(
    f"sum by (target) (increase(counter_flush_failures_total[{WINDOW}]))", "monitor"
)
LEDGER_BACKLOG = Query(
    "max by (shard) (counter_ledger_backlog_bytes)", "alert:CounterLedgerBacklogNearFull"
)
LEDGER_LIMIT = Query(
    "min(counter_ledger_backlog_limit_bytes)", "alert:CounterLedgerBacklogNearFull"
)

GIFT_CODES = Query("max by (campaign) (banner_gift_codes_available)", "dashboard:services")

SHARD_SCRAPED = Query('up{job="redis"}', "alert:RedisShardDown")
SHARD_UP = Query("redis_up", "alert:RedisShardDown")
SHARD_MEMORY = Query("redis_memory_used_bytes", "dashboard:redis")
SHARD_MEMORY_LIMIT = Query("redis_memory_max_bytes", "alert:RedisShardNearlyFull")
SHARD_MEMORY_RATIO = Query(
    "redis_memory_used_bytes / (redis_memory_max_bytes > 0)", "alert:RedisShardNearlyFull"
)

# The alerts at the frame's instant: one series per active alert (alertstate firing or pending),
# and the time each became active, which Prometheus keeps to restore `for:` after a restart.
ALERTS = Query("ALERTS", "prometheus")
ALERTS_SINCE = Query("ALERTS_FOR_STATE", "prometheus")

ALL = {name: value for name, value in globals().items() if isinstance(value, Query)}
