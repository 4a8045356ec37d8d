"""What must hold after a chaos run, checked against the cluster's own stores.

Each check returns an Invariant: a name, whether it held, and the figures behind the verdict.
The stores are read directly (Redis shards, MySQL): the question is what the cluster recorded,
not what an instance's cache says.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import httpx
import redis

from cluster.chaos.faults import RECOVERY_S, SERVICES, Fault
from cluster.chaos.traffic import CLIENT_TIMEOUT_S, DOCUMENTED_5XX, Tally
from cluster.topology import Topology
from services.common.mysql import connect_blocking
from services.common.ring import ShardRing
from services.counter.pages import visits_key

SETTLE_S = 60.0  # buffers flushed, the ledger caught up


@dataclass
class Invariant:
    name: str
    held: bool
    detail: str
    figures: dict[str, Any] = field(default_factory=dict)


def poll(probe: Callable[[], bool], timeout_s: float, interval_s: float = 0.5) -> float | None:
    """Seconds until `probe()` held, or None if it did not within timeout_s."""
    started = time.monotonic()
    while True:
        if probe():
            return time.monotonic() - started
        if time.monotonic() - started > timeout_s:
            return None
        time.sleep(interval_s)


def answers(tally: Tally) -> Invariant:
    """No 5xx but the documented ones, no request without an answer, none slower than the bound."""
    undocumented = {
        f"{endpoint} {kind}": count
        for (endpoint, kind), count in tally.answers.items()
        if kind == "no answer"
        or (
            kind.isdigit()
            and int(kind) >= 500
            and int(kind) not in DOCUMENTED_5XX.get(endpoint, {})
        )
    }
    slowest = max((max(v) for v in tally.latencies.values() if v), default=0.0)
    held = not undocumented and slowest < CLIENT_TIMEOUT_S
    detail = "none" if held else ", ".join(f"{k}: {v}" for k, v in undocumented.items())
    return Invariant(
        "only documented 5xx", held, detail, {"undocumented": undocumented, "slowest_s": slowest}
    )


def recovery(topo: Topology, faults: list[Fault], last_fault_end: float) -> Invariant:
    """Each killed instance and restarted shard answered again within RECOVERY_S, and at the end
    every instance is ready and sees every dependency up."""
    urls = [f"http://127.0.0.1:{i.port}" for i in topo.instances if i.service in SERVICES]

    def all_back() -> bool:
        try:
            for url in urls:
                if httpx.get(f"{url}/readyz", timeout=2).status_code != 200:
                    return False
                if httpx.get(f"{url}/status", timeout=5).json()["status"] != "ok":
                    return False
        except (httpx.HTTPError, ValueError):
            return False
        return True

    took = poll(all_back, RECOVERY_S)
    since_fault = None if took is None else time.monotonic() - last_fault_end
    restarted = [f for f in faults if f.kind in ("kill_instance", "restart_shard")]
    late = [f.target for f in restarted if f.back_after_s is None]
    slowest = max((f.back_after_s or 0.0 for f in restarted), default=0.0)
    if took is None:
        detail = "not every instance ready and seeing every dependency at the end"
    elif late:
        detail = f"not back within {RECOVERY_S:g} s: {', '.join(late)}"
    else:
        detail = f"{len(restarted)} killed or restarted, the slowest back in {slowest:.1f} s"
    return Invariant(
        f"every instance back within {RECOVERY_S:g} s",
        took is not None and not late,
        detail,
        {"slowest_back_s": slowest, "late": late, "all_healthy_after_last_fault_s": since_fault},
    )


def _redis_counts(topo: Topology, pages: Iterable[str]) -> dict[str, int]:
    ports = dict(zip(topo.shard_names, topo.redis_ports, strict=True))
    ring = ShardRing(topo.shard_names)
    counts = {}
    clients = {name: redis.Redis(port=port, socket_timeout=5) for name, port in ports.items()}
    try:
        for page in pages:
            counts[page] = int(clients[ring.shard_for(page)].get(visits_key(page)) or 0)
    finally:
        for client in clients.values():
            client.close()
    return counts


def _ledger_counts(dsn: str, pages: list[str]) -> dict[str, int]:
    conn = connect_blocking(dsn, timeout_s=5)
    try:
        with conn.cursor() as cur:
            marks = ", ".join(["%s"] * len(pages))
            cur.execute(
                "SELECT page_id, SUM(visits) FROM page_visits_daily"
                f" WHERE page_id IN ({marks}) GROUP BY page_id",
                pages,
            )
            found = {str(page): int(total) for page, total in cur.fetchall()}
    finally:
        conn.close()
    return {page: found.get(page, 0) for page in pages}


def visits(
    topo: Topology, dsn: str, tally: Tally, *, ack: str, allowed_loss: int
) -> list[Invariant]:
    """Redis holds every acknowledged visit (commit mode), or all but the documented batch
    window; never more than were sent; and the ledger catches up to exactly Redis's count."""
    pages = sorted(tally.pages)
    acked = sum(t.acked for t in tally.pages.values())
    ceiling = {p: t.acked + t.queued + t.unknown for p, t in tally.pages.items()}
    seen: dict[str, int] = {}

    def settled() -> bool:
        seen.update(_redis_counts(topo, pages))
        lost = sum(max(0, tally.pages[p].acked - seen[p]) for p in pages)
        within = all(seen[p] <= ceiling[p] for p in pages)
        return within and lost <= (0 if ack == "commit" else allowed_loss)

    poll(settled, SETTLE_S)
    lost = sum(max(0, tally.pages[p].acked - seen[p]) for p in pages)
    extra = sum(max(0, seen[p] - ceiling[p]) for p in pages)
    budget = 0 if ack == "commit" else allowed_loss
    counted = Invariant(
        "commit mode: every acknowledged visit counted"
        if ack == "commit"
        else f"batch mode: acknowledged visits lost within the window ({budget})",
        lost <= budget and extra == 0,
        f"{acked} acknowledged, {sum(seen.values())} counted, {lost} lost, {extra} beyond what"
        " was sent",
        {
            "acked": acked,
            "counted": sum(seen.values()),
            "lost": lost,
            "over": extra,
            "allowed_loss": budget,
            "pages": len(pages),
        },
    )
    ledger: dict[str, int] = {}

    def caught_up() -> bool:
        ledger.update(_ledger_counts(dsn, pages))
        return all(ledger[p] == seen[p] for p in pages)

    took = poll(caught_up, SETTLE_S)
    diff = {p: ledger[p] - seen[p] for p in pages if ledger[p] != seen[p]}
    return [
        counted,
        Invariant(
            "the daily ledger equals the count",
            took is not None,
            f"caught up in {took:.1f} s" if took is not None else f"differs on {len(diff)} pages",
            {"ledger": sum(ledger.values()), "differences": diff},
        ),
    ]


def gift_codes(dsn: str, tally: Tally, campaign: int) -> Invariant:
    """Each visitor was given one code, no code went to two visitors, and MySQL records each
    code given with the visitor it was given to."""
    conn = connect_blocking(dsn, timeout_s=5)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT code, visitor FROM gift_codes WHERE campaign_id = %s", (campaign,))
            recorded = {str(code): visitor for code, visitor in cur.fetchall()}
    finally:
        conn.close()
    two_codes = {v: sorted(c) for v, c in tally.codes.items() if len(c) > 1}
    owners: dict[str, list[str]] = {}
    for visitor, codes in tally.codes.items():
        for code in codes:
            owners.setdefault(code, []).append(visitor)
    shared = {code: v for code, v in owners.items() if len(v) > 1}
    unrecorded = [code for code, v in owners.items() if recorded.get(code) not in v]
    held = not two_codes and not shared and not unrecorded
    return Invariant(
        "gift codes: one per visitor, never shared, all recorded",
        held,
        f"{len(owners)} codes given to {len(tally.codes)} visitors;"
        f" {len(shared)} shared, {len(two_codes)} visitors with two, {len(unrecorded)} unrecorded",
        {
            "given": len(owners),
            "visitors": len(tally.codes),
            "shared": len(shared),
            "visitors_with_two": len(two_codes),
            "unrecorded": len(unrecorded),
            "gave_up": tally.claims_gave_up,
            "claimed_in_mysql": sum(1 for v in recorded.values() if v is not None),
        },
    )


def events(dsn: str, tally: Tally, run_id: str) -> Invariant:
    """Every event acknowledged (202) is recorded once; none is recorded twice, retries with the
    same Idempotency-Key included; nothing is recorded that was not sent."""
    conn = connect_blocking(dsn, timeout_s=5)
    try:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT query, COUNT(*) FROM searches WHERE category = 'chaos'"
                " AND query LIKE %s GROUP BY query",
                (f"chaos-{run_id}-%",),
            )
            recorded = {str(query): int(count) for query, count in cur.fetchall()}
    finally:
        conn.close()
    twice = sum(1 for count in recorded.values() if count > 1)
    missing = sum(1 for key in tally.events_acked if key not in recorded)
    unsent = sum(1 for key in recorded if key not in tally.events_sent)
    return Invariant(
        "events: every acknowledged one recorded once",
        twice == 0 and missing == 0 and unsent == 0,
        f"{len(tally.events_acked)} acknowledged, {len(recorded)} recorded;"
        f" {missing} missing, {twice} twice",
        {
            "acked": len(tally.events_acked),
            "sent": len(tally.events_sent),
            "recorded": len(recorded),
            "missing": missing,
            "twice": twice,
            "gave_up": tally.events_gave_up,
        },
    )
