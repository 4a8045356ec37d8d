"""A snapshot drawn as rich tables: what `--once` prints and what the live view refreshes.

Colour comes from facts, not from thresholds of the monitor's own: a row is red when it has
fewer instances than targets, or when a firing alert names it (its job, listener, target or
shard). The thresholds stay in prometheus/rules/alerts.yml, in one place.
"""

from __future__ import annotations

import datetime as dt

from rich import box
from rich.columns import Columns
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from cluster.monitor import units
from cluster.monitor.snapshot import CACHE_LEVELS, Alert, Snapshot

# Enough to show the pools closest to running out; the rest are counted in the caption.
GIFT_POOLS_SHOWN = 8
_LEVEL_TITLES = {"HIT-L1": "L1", "HIT-L2": "L2", "MISS": "miss", "STALE": "stale", "ERROR": "error"}
# The labels by which an alert names a row of the frame.
_ROW_LABELS = ("job", "listener", "target", "shard", "instance")


def stamp(at: float) -> str:
    """The frame's instant, as printed in its header (UTC, whole seconds)."""
    return dt.datetime.fromtimestamp(at, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _alarmed(snapshot: Snapshot, name: str) -> bool:
    return any(a.labels.get(label) == name for a in snapshot.firing for label in _ROW_LABELS)


def _table(title: str, *columns: str, numbers: bool = True) -> Table:
    """A titled table; its first column names the row, the others hold numbers (right-aligned)."""
    table = Table(title=title, title_justify="left", box=box.ROUNDED, title_style="bold")
    for index, column in enumerate(columns):
        right = numbers and index > 0
        table.add_column(column, justify="right" if right else "left", no_wrap=True)
    return table


def header(url: str, at: float, interval_s: float | None, keys: bool = True) -> Text:
    text = Text.assemble(("Quartet monitor", "bold"), f" · Prometheus {url} · {stamp(at)}")
    if interval_s is not None:
        text.append(f" · every {interval_s:g} s" + (" · q quits" if keys else ""), style="dim")
    return text


def services(snapshot: Snapshot) -> Table:
    table = _table("services (5 m)", "service", "up", "req/s", "5xx", "p50", "p95", "p99")
    for row in snapshot.services:
        short = row.up < row.expected or row.expected == 0
        table.add_row(
            row.name,
            f"{row.up}/{row.expected}",
            units.rate(row.requests),
            units.share(row.errors),
            units.seconds(row.p50),
            units.seconds(row.p95),
            units.seconds(row.p99),
            style="red" if short or _alarmed(snapshot, row.name) else None,
        )
    return table


def gateway(snapshot: Snapshot) -> Table:
    up = f"{snapshot.gateway_up}/{snapshot.gateway_expected}"
    table = _table(
        f"gateway (5 m), targets up {up}", "listener", "resp/s", "429/s", "429", "5xx/s", "5xx"
    )
    if snapshot.gateway_up < snapshot.gateway_expected or not snapshot.gateway_expected:
        table.title_style = "bold red"
    for row in snapshot.listeners:
        table.add_row(
            row.name,
            units.rate(row.responses),
            units.rate(row.limited),
            units.share(row.limited_share),
            units.rate(row.server_errors),
            units.share(row.server_error_share),
            style="red" if _alarmed(snapshot, row.name) else None,
        )
    if not snapshot.listeners:
        table.add_row("no responses yet", *[units.NONE] * 5)
    return table


def cache(snapshot: Snapshot) -> Table:
    levels = [*CACHE_LEVELS, *sorted(set(snapshot.cache) - set(CACHE_LEVELS))]
    table = _table("recommender answers (5 m)", *[_LEVEL_TITLES.get(r, r) for r in levels], "per s")
    table.columns[0].justify = "right"
    table.add_row(
        *[units.share(snapshot.cache_share(r)) for r in levels],
        units.rate(sum(snapshot.cache.values()) if snapshot.cache else None),
    )
    return table


def counter(snapshot: Snapshot) -> Table:
    pending = units.count(snapshot.pending_visits)
    limit = units.size(snapshot.ledger_limit)
    table = _table(
        f"counter: {pending} visits not yet in Redis",
        "flush to",
        "lag",
        "failed (5 m)",
        f"ledger backlog of {limit}",
    )
    for target in snapshot.flush_targets:
        table.add_row(
            target.name,
            units.seconds(target.lag),
            units.count(target.failures),
            units.size(target.ledger_backlog),
            style="red" if target.failures or _alarmed(snapshot, target.name) else None,
        )
    return table


def gift_codes(snapshot: Snapshot) -> Table:
    pools = sorted(snapshot.gift_codes.items(), key=lambda item: (item[1], item[0]))
    table = _table("gift codes left", "campaign", "codes")
    for campaign, left in pools[:GIFT_POOLS_SHOWN]:
        table.add_row(campaign, units.count(left), style="red" if left == 0 else None)
    if not pools:
        table.add_row("no pool minted", units.NONE)
    if len(pools) > GIFT_POOLS_SHOWN:
        table.caption = f"and {len(pools) - GIFT_POOLS_SHOWN} more campaigns"
    return table


def shards(snapshot: Snapshot) -> Table:
    table = _table("redis shards", "shard", "state", "memory", "limit", "used")
    for shard in snapshot.shards:
        state = "up" if shard.up else ("down" if shard.scraped else "not scraped")
        table.add_row(
            shard.name,
            state,
            units.size(shard.memory),
            "none" if shard.limit == 0 else units.size(shard.limit),
            units.share(shard.ratio),
            style="red" if not shard.up or _alarmed(snapshot, shard.name) else None,
        )
    return table


def _where(alert: Alert) -> str:
    # Every label but the name and severity (shown beside it): job, instance, upstream, ...
    where = {k: v for k, v in alert.labels.items() if k not in {"alertname", "severity"}}
    return " ".join(f"{k}={v}" for k, v in sorted(where.items()))


def alerts(snapshot: Snapshot) -> Table:
    table = _table("alerts", "alert", "state", "severity", "where", "since", numbers=False)
    # Firing first, then pending (an alert inside its `for:`: what may fire next).
    for alert in [*snapshot.firing, *snapshot.pending]:
        since = units.NONE if alert.active_at is None else stamp(alert.active_at)[11:19]
        table.add_row(
            alert.name,
            alert.state,
            alert.labels.get("severity", ""),
            _where(alert),
            since,
            style="red" if alert.state == "firing" else "yellow",
        )
    if not snapshot.firing and not snapshot.pending:
        table.add_row("none firing", "", "", "", "")
    # Watchdog always fires; when it does not, the rules are not loaded or not evaluated.
    if snapshot.watchdog_firing:
        table.caption = "Watchdog firing: the rules are evaluated"
    else:
        table.caption = "Watchdog NOT firing: are the rules loaded?"
        table.caption_style = "bold red"
    return table


def frame(snapshot: Snapshot, interval_s: float | None = None, keys: bool = True) -> RenderableType:
    """The whole frame; `interval_s` (and whether `q` quits) only for the live view's header."""
    parts = [services(snapshot), gateway(snapshot), cache(snapshot), counter(snapshot)]
    parts += [shards(snapshot), gift_codes(snapshot), alerts(snapshot)]
    lines: list[RenderableType] = [header(snapshot.url, snapshot.at, interval_s, keys)]
    if snapshot.unrecorded:
        lines.append(
            Text(
                "not recorded by this Prometheus (its rules predate prometheus/rules/: reload"
                f" it): {', '.join(snapshot.unrecorded)}",
                style="yellow",
            )
        )
    return Group(*lines, Columns(parts, padding=(0, 2)))


def unreachable(message: str, url: str, at: float, last: float | None) -> RenderableType:
    """The live view while Prometheus does not answer: the reason, and that it keeps trying."""
    seen = f"last answer {stamp(last)}" if last is not None else "no answer yet"
    return Group(
        header(url, at, None),
        Text(message, style="bold red"),
        Text(f"retrying every refresh; {seen}", style="dim"),
    )
