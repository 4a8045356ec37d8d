"""One frame's facts: every query asked at the same instant, turned into rows.

Pinning the instant (`time=` on every query, a whole second) makes a frame one coherent picture
rather than numbers a few milliseconds apart, and lets anyone ask Prometheus the same question
at the printed time and get the same answer (the tests do).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from cluster.monitor import queries
from cluster.monitor.prometheus import Prometheus, Sample
from cluster.monitor.queries import Query
from services.common.description import names

# The recommender's cache levels, in the order a lookup tries them (services/recommender/cache.py);
# STALE (an expired L2 entry served while MySQL is down) and ERROR show only when they happen.
CACHE_LEVELS = ("HIT-L1", "HIT-L2", "MISS")
# Always firing by design (prometheus/rules/alerts.yml): its absence, not its presence, is news.
WATCHDOG = "Watchdog"


@dataclass(frozen=True)
class Alert:
    name: str
    state: str  # "firing" or "pending" (inside its `for:`)
    labels: dict[str, str]  # the alert's own: severity, job, instance, shard ...
    active_at: float | None  # unix time


@dataclass(frozen=True)
class ServiceRow:
    name: str
    up: int
    expected: int
    requests: float | None  # per second
    errors: float | None  # share of 5xx
    p50: float | None  # seconds
    p95: float | None
    p99: float | None


@dataclass(frozen=True)
class ListenerRow:
    name: str
    responses: float | None  # per second
    limited: float | None  # 429 per second
    limited_share: float | None
    server_errors: float | None  # 5xx per second
    server_error_share: float | None


@dataclass(frozen=True)
class FlushTarget:
    name: str  # a shard's stable name, or "mysql" (the daily ledger)
    lag: float | None  # seconds a buffer has held visits without a successful flush
    failures: float  # failed flushes in the window
    ledger_backlog: float | None  # bytes in the shard's stream not yet in MySQL (shards only)


@dataclass(frozen=True)
class Shard:
    name: str
    scraped: bool
    up: bool
    memory: float | None
    limit: float | None  # 0: no maxmemory
    ratio: float | None


@dataclass(frozen=True)
class Snapshot:
    url: str
    at: float  # the unix time every query was evaluated at
    services: list[ServiceRow]
    gateway_up: int
    gateway_expected: int
    listeners: list[ListenerRow]
    cache: dict[str, float]  # answers per second by result
    pending_visits: float | None
    flush_targets: list[FlushTarget]
    ledger_limit: float | None
    gift_codes: dict[str, float]  # codes left by campaign
    shards: list[Shard]
    alerts: list[Alert] = field(default_factory=list)
    # Recorded series the monitor reads that this Prometheus's rules do not write (rules older
    # than the repository's): their cells show no number rather than a zero-filled guess.
    unrecorded: list[str] = field(default_factory=list)

    @property
    def firing(self) -> list[Alert]:
        return self._in("firing")

    @property
    def pending(self) -> list[Alert]:
        return self._in("pending")

    def _in(self, state: str) -> list[Alert]:
        chosen = [a for a in self.alerts if a.state == state and a.name != WATCHDOG]
        return sorted(chosen, key=lambda a: (a.name, sorted(a.labels.items())))

    @property
    def watchdog_firing(self) -> bool:
        return any(a.name == WATCHDOG and a.state == "firing" for a in self.alerts)

    def cache_share(self, result: str) -> float | None:
        total = sum(self.cache.values())
        return self.cache.get(result, 0.0) / total if total else None


Ask = Callable[[Query], list[Sample]]


def by(samples: list[Sample], label: str) -> dict[str, float | None]:
    return {s.label(label): s.value for s in samples}


def _one(samples: list[Sample]) -> float | None:
    return samples[0].value if samples else None


def alerts(active: list[Sample], since: list[Sample]) -> list[Alert]:
    """The alerts of `ALERTS` samples, with when each became active from `ALERTS_FOR_STATE`."""

    def own(labels: dict[str, str]) -> dict[str, str]:
        return {k: v for k, v in labels.items() if k not in {"__name__", "alertstate"}}

    became_active = {frozenset(own(s.labels).items()): s.value for s in since}
    return [
        Alert(
            name=s.label("alertname"),
            state=s.label("alertstate"),
            labels=own(s.labels),
            active_at=became_active.get(frozenset(own(s.labels).items())),
        )
        for s in active
    ]


def collect(ask: Ask, url: str, at: float, unrecorded: list[str] | None = None) -> Snapshot:
    """Asks every query (through `ask`, so a test can answer from a table) and builds the rows."""
    up = by(ask(queries.INSTANCES_UP), "job")
    expected = by(ask(queries.INSTANCES_EXPECTED), "job")
    requests = by(ask(queries.REQUESTS), "job")
    errors = by(ask(queries.ERROR_RATIO), "job")
    p50, p95, p99 = (by(ask(q), "job") for q in (queries.P50, queries.P95, queries.P99))
    services = [
        ServiceRow(
            name,
            int(up.get(name) or 0),
            int(expected.get(name) or 0),
            requests.get(name),
            errors.get(name),
            p50.get(name),
            p95.get(name),
            p99.get(name),
        )
        for name in names()
    ]

    responses = by(ask(queries.GATEWAY_RESPONSES), "listener")
    limited = by(ask(queries.GATEWAY_LIMITED), "listener")
    limited_share = by(ask(queries.GATEWAY_LIMITED_RATIO), "listener")
    server_errors = by(ask(queries.GATEWAY_SERVER_ERRORS), "listener")
    server_error_share = by(ask(queries.GATEWAY_SERVER_ERROR_RATIO), "listener")
    listeners = [
        ListenerRow(
            name,
            rate,
            limited.get(name),
            limited_share.get(name),
            server_errors.get(name),
            server_error_share.get(name),
        )
        for name, rate in sorted(responses.items())
    ]

    cache = {
        result: value or 0.0 for result, value in by(ask(queries.CACHE_ANSWERS), "result").items()
    }

    lag = by(ask(queries.FLUSH_LAG), "target")
    failures = by(ask(queries.FLUSH_FAILURES), "target")
    backlog = by(ask(queries.LEDGER_BACKLOG), "shard")
    # The buffers report a lag for every target they flush to; a failure counter appears only
    # at the first failure, and the ledger streams live on the shards.
    flush_targets = [
        FlushTarget(name, lag.get(name), failures.get(name) or 0.0, backlog.get(name))
        for name in sorted({*lag, *failures, *backlog}, key=lambda n: (n == "mysql", n))
    ]

    scraped = by(ask(queries.SHARD_SCRAPED), "instance")
    shard_up = by(ask(queries.SHARD_UP), "instance")
    memory = by(ask(queries.SHARD_MEMORY), "instance")
    limit = by(ask(queries.SHARD_MEMORY_LIMIT), "instance")
    ratio = by(ask(queries.SHARD_MEMORY_RATIO), "instance")
    shards = [
        Shard(
            name,
            scraped.get(name) == 1,
            shard_up.get(name) == 1,
            memory.get(name),
            limit.get(name),
            ratio.get(name),
        )
        for name in sorted({*scraped, *shard_up})
    ]

    return Snapshot(
        url=url,
        at=at,
        services=services,
        gateway_up=int(up.get("gateway") or 0),
        gateway_expected=int(expected.get("gateway") or 0),
        listeners=listeners,
        cache=cache,
        pending_visits=_one(ask(queries.PENDING_VISITS)),
        flush_targets=flush_targets,
        ledger_limit=_one(ask(queries.LEDGER_LIMIT)),
        gift_codes={
            c: v for c, v in by(ask(queries.GIFT_CODES), "campaign").items() if v is not None
        },
        shards=shards,
        alerts=alerts(ask(queries.ALERTS), ask(queries.ALERTS_SINCE)),
        unrecorded=unrecorded or [],
    )


def take(prometheus: Prometheus, at: float) -> Snapshot:
    """A snapshot from a live server; PrometheusError when it does not answer."""
    recorded = prometheus.recorded()
    unrecorded = sorted({name for q in queries.ALL.values() for name in q.recorded} - recorded)

    def ask(query: Query) -> list[Sample]:
        # A missing rule is not asked: its `or ... * 0` fallback would print a confident 0.
        return [] if query.recorded - recorded else prometheus.query(query.expr, at)

    return collect(ask, prometheus.url, at, unrecorded)
