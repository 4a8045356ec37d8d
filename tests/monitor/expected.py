"""What Prometheus says a frame should show: traffic for the test cluster, a wait until
Prometheus has seen it, and every number of a printed frame compared with Prometheus's own
answer at the frame's instant.

The queries here are written out again, not imported from cluster/monitor/queries.py: the test
states what each column means (the recorded series, the raw expression), so a monitor that asks
the wrong question fails instead of agreeing with itself.
"""

from __future__ import annotations

import math
import re
import time
from collections import defaultdict

import httpx

from services.common.description import names
from tests.monitor import frame_text
from tests.support.cluster import RunningCluster

# A campaign of the generated dataset no other test mints for (grafana: 1016, chaos: 1003).
GIFT_CAMPAIGN = "1021"
GIFT_CODES = 9
WAIT_S = 120  # a rate needs two scrapes (10 s apart) after the traffic, a recording rule one more
# How far back the frames are taken: by then every scrape and rule evaluation up to that instant
# has landed, so a frame and this module's own queries read the same samples.
SETTLE_S = 5


class PrometheusAt:
    """Instant queries at one time, by one label."""

    def __init__(self, url: str, at: float | None = None) -> None:
        self.url, self.at = url, at

    def samples(self, query: str) -> list[tuple[dict[str, str], float]]:
        params = {"query": query} if self.at is None else {"query": query, "time": str(self.at)}
        body = httpx.get(f"{self.url}/api/v1/query", params=params, timeout=5).json()
        assert body["status"] == "success", (query, body)
        return [(item["metric"], float(item["value"][1])) for item in body["data"]["result"]]

    def by(self, query: str, label: str) -> dict[str, float]:
        return {labels.get(label, ""): value for labels, value in self.samples(query)}


def prometheus_url(cluster: RunningCluster) -> str:
    return f"http://127.0.0.1:{cluster.topo.prometheus_port}"


def send_traffic(cluster: RunningCluster, round_: int) -> None:
    """One round of every kind of request the frame counts, through the public gateway."""
    users = cluster.env.get("QUARTET_RECOMMENDER_USERS", "300")
    with httpx.Client(base_url=cluster.gateway, timeout=10) as client:
        for k in range(5):
            user = (round_ * 5 + k) % int(users) + 1
            client.get(f"/recommend/{user}")  # a miss the first time, then L1 or L2
            client.get(f"/recommend/{user}")
            client.post("/visits/monitor")
            client.get("/visits/monitor")
            client.get("/campaigns/1002")
            client.get("/api/smart", params={"timeout": 300})
        for _ in range(120):  # faster than the public listener's 100 r/s: some 429s
            client.get("/visits/monitor-burst")


def mint_gift_codes(cluster: RunningCluster) -> None:
    admin = {"Authorization": f"Bearer {cluster.admin_token}"}
    with httpx.Client(base_url=cluster.internal, timeout=10) as internal:
        answer = internal.post(
            f"/api/campaigns/{GIFT_CAMPAIGN}/gift-codes", json={"count": GIFT_CODES}, headers=admin
        )
        assert answer.status_code in (200, 201), answer.text


def _seen(prometheus: PrometheusAt) -> list[str]:
    """What Prometheus has not shown yet of the traffic (empty when the frame has it all)."""
    missing = []
    rates = prometheus.by("job:http_requests:rate5m", "job")
    p50 = prometheus.by("job:http_request_duration_seconds:p50_5m", "job")
    for name in names():
        if not rates.get(name) or math.isnan(p50.get(name, math.nan)):
            missing.append(f"{name} requests")
    if not prometheus.by("listener:gateway_http_responses_429:ratio_rate5m", "listener").get(
        "public"
    ):
        missing.append("public 429s")
    if not sum(prometheus.by("rate(recommender_cache_lookups_total[5m])", "result").values()):
        missing.append("recommender lookups")
    if GIFT_CAMPAIGN not in prometheus.by("banner_gift_codes_available", "campaign"):
        missing.append("gift pool")
    return missing


def settled_instant() -> float:
    return float(math.floor(time.time()) - SETTLE_S)


def wait_until_prometheus_has_seen_traffic(cluster: RunningCluster) -> None:
    """Traffic rounds until Prometheus's rates and recorded series hold it SETTLE_S ago (from
    then on, for the 5 minutes of the rates' window; bounded in time)."""
    mint_gift_codes(cluster)
    deadline = time.monotonic() + WAIT_S
    round_ = 0
    while True:
        send_traffic(cluster, round_)
        missing = _seen(PrometheusAt(prometheus_url(cluster), settled_instant()))
        if not missing:
            return
        assert time.monotonic() < deadline, f"Prometheus never showed: {missing}"
        round_ += 1
        time.sleep(2)  # the poll interval; a scrape is every 10 s


def _up(prometheus: PrometheusAt, job: str) -> str:
    values = [v for _, v in prometheus.samples(f'up{{job="{job}"}}')]
    return f"{round(sum(values))}/{len(values)}"


def mismatches(text: str, cluster: RunningCluster) -> list[str]:
    """Every cell of the frame that differs from Prometheus at the frame's instant."""
    prometheus = PrometheusAt(prometheus_url(cluster), frame_text.instant(text))
    problems: list[str] = []

    def check(where: str, cell: str, value: float | None, slack: float = 1e-9) -> None:
        if not frame_text.shows(cell, value, slack):
            problems.append(f"{where}: the frame shows {cell!r}, Prometheus {value}")

    services = {row["service"]: row for row in frame_text.table(text, "services")}
    if list(services) != list(names()):
        problems.append(f"services: {list(services)}, expected {list(names())}")
    requests = prometheus.by("job:http_requests:rate5m", "job")
    errors = prometheus.by("job:http_requests_5xx:ratio_rate5m", "job")
    for name, row in services.items():
        if row["up"] != _up(prometheus, name):
            problems.append(f"{name} up: {row['up']}, Prometheus {_up(prometheus, name)}")
        check(f"{name} req/s", row["req/s"], requests.get(name))
        # No 5xx series while there are requests is 0 %.
        check(f"{name} 5xx", row["5xx"], errors.get(name, 0.0 if name in requests else None))
        for quantile in ("p50", "p95", "p99"):
            series = f"job:http_request_duration_seconds:{quantile}_5m"
            check(f"{name} {quantile}", row[quantile], prometheus.by(series, "job").get(name))

    gateway_up = _up(prometheus, "gateway")
    if f"targets up {gateway_up}" not in frame_text.title_line(text, "gateway (5 m)"):
        problems.append(f"gateway targets: Prometheus says {gateway_up}")

    def recorded(suffix: str) -> dict[str, float]:
        return prometheus.by(f"listener:gateway_http_responses{suffix}", "listener")

    responses = recorded(":rate5m")
    columns = {"429/s": "_429:rate5m", "429": "_429:ratio_rate5m", "5xx/s": "_5xx:rate5m"}
    columns["5xx"] = "_5xx:ratio_rate5m"
    listeners = {row["listener"]: row for row in frame_text.table(text, "gateway (5 m)")}
    if sorted(listeners) != sorted(responses):
        problems.append(f"listeners: {sorted(listeners)}, Prometheus {sorted(responses)}")
    for name, row in listeners.items():
        check(f"{name} resp/s", row["resp/s"], responses.get(name))
        for column, series in columns.items():
            # No 429 or 5xx series of a listener that answered is none so far: 0.
            check(f"{name} {column}", row[column], recorded(series).get(name, 0.0))

    answers = prometheus.by("sum by (result) (rate(recommender_cache_lookups_total[5m]))", "result")
    total = sum(answers.values())
    (cache,) = frame_text.table(text, "recommender answers")
    for result, column in (("HIT-L1", "L1"), ("HIT-L2", "L2"), ("MISS", "miss")):
        check(f"cache {column}", cache[column], answers.get(result, 0.0) / total if total else None)
    check("cache per s", cache["per s"], total if answers else None)

    pending = prometheus.by("sum(counter_pending_visits)", "")
    shown = re.search(r"counter: (\S+) visits not yet in Redis", text)
    if shown is None:
        problems.append("no pending visits in the counter's title")
    else:
        check("pending visits", shown[1].replace(",", ""), pending.get(""))
    limit = prometheus.by("min(counter_ledger_backlog_limit_bytes)", "").get("")
    lag = prometheus.by("max by (target) (counter_flush_lag_seconds)", "target")
    failures = prometheus.by(
        "sum by (target) (increase(counter_flush_failures_total[5m]))", "target"
    )
    backlog = prometheus.by("max by (shard) (counter_ledger_backlog_bytes)", "shard")
    flushes = frame_text.table(text, "counter:")
    (backlog_column,) = (c for c in flushes[0] if c.startswith("ledger backlog of "))
    check("ledger limit", backlog_column.removeprefix("ledger backlog of "), limit)
    if {row["flush to"] for row in flushes} != {*lag, *failures, *backlog}:
        problems.append(f"flush targets: {flushes}, Prometheus {sorted(lag)}")
    for row in flushes:
        target = row["flush to"]
        check(f"{target} lag", row["lag"], lag.get(target))
        check(f"{target} failed", row["failed (5 m)"], failures.get(target, 0.0))
        check(f"{target} ledger backlog", row[backlog_column], backlog.get(target))

    used = prometheus.by("redis_memory_used_bytes", "instance")
    limits = prometheus.by("redis_memory_max_bytes", "instance")
    redis_up = prometheus.by("redis_up", "instance")
    shards = {row["shard"]: row for row in frame_text.table(text, "redis shards")}
    if list(shards) != cluster.topo.shard_names:
        problems.append(f"shards: {list(shards)}, expected {cluster.topo.shard_names}")
    for name, row in shards.items():
        if row["state"] != ("up" if redis_up.get(name) == 1 else "down"):
            problems.append(f"{name}: {row['state']}, redis_up {redis_up.get(name)}")
        check(f"{name} memory", row["memory"], used.get(name))
        check(f"{name} limit", row["limit"], limits.get(name))
        check(f"{name} used", row["used"], used[name] / limits[name], slack=1e-6)

    pools = prometheus.by("max by (campaign) (banner_gift_codes_available)", "campaign")
    gifts = frame_text.table(text, "gift codes left")
    if len(gifts) != min(len(pools), 8):
        problems.append(f"gift pools shown: {len(gifts)} of {len(pools)}")
    for row in gifts:
        check(f"gift codes of {row['campaign']}", row["codes"], pools.get(row["campaign"]))

    firing: dict[str, int] = defaultdict(int)
    for labels, _ in prometheus.samples('ALERTS{alertstate="firing",alertname!="Watchdog"}'):
        firing[labels["alertname"]] += 1
    shown_firing: dict[str, int] = defaultdict(int)
    for row in frame_text.table(text, "alerts"):
        if row["state"] == "firing":
            shown_firing[row["alert"]] += 1
    if shown_firing != firing:
        problems.append(f"alerts firing: {dict(shown_firing)}, Prometheus {dict(firing)}")
    watchdog = bool(prometheus.samples('ALERTS{alertname="Watchdog",alertstate="firing"}'))
    if ("Watchdog firing" in text) != watchdog:
        problems.append(f"Watchdog: Prometheus says firing={watchdog}")
    return problems
