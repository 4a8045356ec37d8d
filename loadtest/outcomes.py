"""How the load test judges each answer, and the whole run. Standard library only: the locustfile
imports it (inside the stock locust image as well), and so do the tests, without locust.

Every answer is one of five outcomes:

- ``ok``: the status the endpoint promises, and a body of the promised shape.
- ``rate_limited``: a 429 from the **gateway's** per-client limits (nginx's own problem page, which
  carries no ``request_id``, or nginx's built-in HTML page, which it falls back to when many
  connections from one client are refused at once). Expected on the public listener; counted
  apart, never an error.
- ``upstream``: a 502 or 504 that the aggregator itself answered (a service problem, with
  ``request_id``) on a fan-out endpoint: its contract's honest answer when the work server failed
  or hung (the local simulator injects such failures). Counted apart, not an error.
- ``refused``: a 503, or a service's 429, **with** ``Retry-After``: the cluster declining work it
  cannot serve fast now and saying when to come back (a worker's admission control, the
  in-flight cap, the gateway with no instance to try: docs/reliability.md). Counted apart, not
  an error: under more load than the cluster can serve, that is its promised answer.
- ``unexpected``: everything else: a 502 or 504 from nginx (no instance answered), a 5xx without
  ``Retry-After``, a 4xx, a body of the wrong shape, a page with a missing part, no answer at all.

Locust records each non-ok answer as a failure whose message starts with a tag
(``[expected: rate-limited]``, ``[expected: upstream]``, ``[expected: refused]``), so its CSV and
HTML reports show them beside the real failures, and the verdict is computed from locust's own
(distributed-safe) error table: see ``summarize``.
"""

from __future__ import annotations

import csv
import enum
import json
import math
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

TAG_RATE_LIMITED = "[expected: rate-limited]"
TAG_UPSTREAM = "[expected: upstream]"
TAG_REFUSED = "[expected: refused]"
# nginx's own page when its JSON error page could not be served (seen under many concurrent
# connections from one client on the public listener).
NGINX_429_PAGE = b"<title>429 Too Many Requests</title>"


class Outcome(enum.Enum):
    OK = "ok"
    RATE_LIMITED = "rate_limited"
    UPSTREAM = "upstream"
    REFUSED = "refused"
    UNEXPECTED = "unexpected"


@dataclass(frozen=True)
class Verdict:
    outcome: Outcome
    reason: str = ""

    @property
    def message(self) -> str:
        """The failure message locust records (empty for ok)."""
        if self.outcome is Outcome.RATE_LIMITED:
            return f"{TAG_RATE_LIMITED} {self.reason}"
        if self.outcome is Outcome.UPSTREAM:
            return f"{TAG_UPSTREAM} {self.reason}"
        if self.outcome is Outcome.REFUSED:
            return f"{TAG_REFUSED} {self.reason}"
        return self.reason


OK = Verdict(Outcome.OK)
# A body check: None when the body is as promised, else why not.
Check = Callable[[bytes], str | None]


def _json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except ValueError:
        return None


def _problem(body: bytes) -> dict[str, Any] | None:
    parsed = _json(body)
    if isinstance(parsed, dict) and "status" in parsed and "title" in parsed:
        return parsed
    return None


def classify(
    status: int,
    body: bytes,
    *,
    ok: Iterable[int] = (200,),
    fanout: bool = False,
    check: Check | None = None,
    error: str = "",
    retry_after: bool = False,
) -> Verdict:
    """The outcome of one answer. `status` 0 means no answer (`error` says why); `fanout` marks
    the aggregator's /api/{all,first,within-timeout,smart}, whose 502/504 are its contract;
    `retry_after`: the answer carried a Retry-After header."""
    if status == 0:
        return Verdict(Outcome.UNEXPECTED, f"no answer: {error or 'connection failed'}")
    if status in set(ok):
        reason = check(body) if check is not None else None
        return OK if reason is None else Verdict(Outcome.UNEXPECTED, f"bad body: {reason}")
    problem = _problem(body)
    # nginx's own error pages are problem+json without a request id; the services add theirs.
    from_service = problem is not None and "request_id" in problem
    if status == 429 and problem is not None and not from_service:
        return Verdict(Outcome.RATE_LIMITED, "429 from the gateway's per-client limits")
    if status == 429 and NGINX_429_PAGE in body:
        # Still the gateway's limit, but its built-in page instead of the JSON one: shown apart.
        return Verdict(
            Outcome.RATE_LIMITED, "429 from the gateway's limits, as nginx's built-in HTML page"
        )
    if retry_after and (status == 503 or (status == 429 and from_service)):
        origin = "a service" if from_service else "the gateway"
        detail = problem.get("detail") if problem is not None else "no problem document"
        return Verdict(Outcome.REFUSED, f"{status} with Retry-After from {origin}: {detail}")
    if fanout and status in (502, 504) and from_service:
        assert problem is not None
        return Verdict(Outcome.UPSTREAM, f"{status} from the aggregator: {problem.get('detail')}")
    if problem is None:
        snippet = body[:80].decode("utf-8", "replace")
        detail = f": not problem+json: {snippet!r}"
    else:
        detail = f": {problem.get('detail')}" if problem.get("detail") else ""
    origin = " (gateway)" if problem is not None and not from_service else ""
    return Verdict(Outcome.UNEXPECTED, f"HTTP {status}{origin}{detail}")


# --- body checks: the promised shape of each endpoint's answer ------------------------------


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_visit_post(body: bytes) -> str | None:
    parsed = _json(body)
    if not isinstance(parsed, dict) or parsed.get("status") != "success":
        return "no {'status': 'success'}"
    return None


def check_visit_get(body: bytes) -> str | None:
    parsed = _json(body)
    if not isinstance(parsed, dict) or not _is_int(parsed.get("visits")):
        return "no integer 'visits'"
    if parsed.get("degraded"):
        return "degraded count (the owning shard did not answer)"
    return None


def check_daily(body: bytes) -> str | None:
    parsed = _json(body)
    if not isinstance(parsed, dict) or not isinstance(parsed.get("days"), list):
        return "no 'days' list"
    return None


def check_campaign_page(body: bytes) -> str | None:
    return None if b'<img src="/images/image_' in body else "no banner image in the page"


def image_url(body: bytes) -> str | None:
    """The banner image a campaign page shows."""
    start = body.find(b'<img src="')
    if start < 0:
        return None
    start += len(b'<img src="')
    end = body.find(b'"', start)
    return body[start:end].decode() if end > start else None


def _field(name: str, accept: Callable[[object], bool], wanted: str) -> Check:
    """A check that the body is a JSON object whose `name` passes `accept`."""

    def check(body: bytes) -> str | None:
        parsed = _json(body)
        if not isinstance(parsed, dict) or not accept(parsed.get(name)):
            return f"no {wanted}"
        return None

    return check


check_banner = _field("banner_id", _is_int, "integer 'banner_id'")
check_recommend = _field(
    "recommendations", lambda v: isinstance(v, dict), "'recommendations' object"
)


def check_batch(body: bytes) -> str | None:
    parsed = _json(body)
    if not isinstance(parsed, dict) or not isinstance(parsed.get("results"), list):
        return "no 'results' list"
    if parsed.get("failed"):
        return f"{parsed['failed']} users unavailable"
    return None


def check_page(body: bytes) -> str | None:
    """A composed page with every part asked for (the load test always asks for all three)."""
    parsed = _json(body)
    if not isinstance(parsed, dict) or "errors" not in parsed:
        return "not a composed page"
    if parsed["errors"]:
        return f"parts missing: {json.dumps(parsed['errors'], sort_keys=True)}"
    missing = [k for k in ("visits", "banner", "recommendations") if parsed.get(k) is None]
    return f"parts missing: {missing}" if missing else None


def check_first(body: bytes) -> str | None:
    parsed = _json(body)
    if not isinstance(parsed, dict) or set(parsed) != {"time"} or not _is_int(parsed["time"]):
        return "not {'time': <int>}"
    return None


def check_list(body: bytes) -> str | None:
    parsed = _json(body)
    if not isinstance(parsed, list):
        return "not a list"
    return None


check_accepted = _field("status", lambda v: v == "accepted", "{'status': 'accepted'}")
check_invalidated = _field("status", lambda v: v == "invalidated", "{'status': 'invalidated'}")
check_minted = _field("minted", _is_int, "integer 'minted'")
check_gift_code = _field("code", lambda v: isinstance(v, str), "'code'")


# --- the verdict over a whole run -------------------------------------------------------------


@dataclass(frozen=True)
class ErrorRow:
    """One line of locust's error table (its failures CSV): a distinct message and its count."""

    method: str
    name: str
    message: str
    occurrences: int

    @property
    def outcome(self) -> Outcome:
        if TAG_RATE_LIMITED in self.message:
            return Outcome.RATE_LIMITED
        if TAG_UPSTREAM in self.message:
            return Outcome.UPSTREAM
        if TAG_REFUSED in self.message:
            return Outcome.REFUSED
        return Outcome.UNEXPECTED


@dataclass
class Summary:
    requests: int
    rate_limited: int = 0
    upstream: int = 0
    refused: int = 0
    unexpected: int = 0
    unexpected_by_message: Counter[str] = field(default_factory=Counter)

    @property
    def served(self) -> int:
        """Requests a service got to answer: all but the gateway's 429s."""
        return self.requests - self.rate_limited

    @property
    def ok(self) -> int:
        """Answered as promised: the goodput's numerator."""
        return self.requests - self.rate_limited - self.upstream - self.refused - self.unexpected

    @property
    def unexpected_rate(self) -> float:
        """Unexpected errors per served request (1.0 when nothing was served)."""
        return self.unexpected / self.served if self.served > 0 else 1.0

    def verdict(self, max_error_rate_percent: float) -> tuple[bool, str]:
        """(passed, why). A threshold of 0 tolerates no unexpected error at all."""
        if self.served <= 0:
            return False, "no request was served"
        rate = 100 * self.unexpected_rate
        if self.unexpected and (max_error_rate_percent <= 0 or rate > max_error_rate_percent):
            return False, (
                f"unexpected error rate {rate:.3f} % above the threshold "
                f"{max_error_rate_percent:g} % ({self.unexpected} of {self.served} served)"
            )
        return True, (
            f"unexpected error rate {rate:.3f} % within the threshold "
            f"{max_error_rate_percent:g} % ({self.unexpected} of {self.served} served)"
        )


def error_message(described: str, method: str | None, name: str) -> str:
    """The failure's own message from locust's `StatsError.to_name()` ("<method> <name>: <msg>")."""
    prefix = f"{method} {name}: "
    return described[len(prefix) :] if described.startswith(prefix) else described


def summarize(requests: int, errors: Iterable[ErrorRow]) -> Summary:
    """`requests`: every request locust counted, failures included; `errors`: its error table."""
    summary = Summary(requests)
    for row in errors:
        outcome = row.outcome
        if outcome is Outcome.RATE_LIMITED:
            summary.rate_limited += row.occurrences
        elif outcome is Outcome.UPSTREAM:
            summary.upstream += row.occurrences
        elif outcome is Outcome.REFUSED:
            summary.refused += row.occurrences
        else:
            summary.unexpected += row.occurrences
            summary.unexpected_by_message[f"{row.method} {row.name}: {row.message}"] += (
                row.occurrences
            )
    return summary


# --- locust's CSV files -------------------------------------------------------------------------


@dataclass(frozen=True)
class StatsRow:
    method: str
    name: str
    requests: int
    failures: int
    p50_ms: float
    p99_ms: float


def _number(value: str) -> float:
    return float(value) if value not in ("", "N/A") else math.nan


def read_stats_csv(path: Path) -> list[StatsRow]:
    """Rows of `<prefix>_stats.csv`, the `Aggregated` line included (method "")."""
    with path.open(newline="") as f:
        return [
            StatsRow(
                method=row["Type"],
                name=row["Name"],
                requests=int(row["Request Count"]),
                failures=int(row["Failure Count"]),
                p50_ms=_number(row["50%"]),
                p99_ms=_number(row["99%"]),
            )
            for row in csv.DictReader(f)
        ]


def read_failures_csv(path: Path) -> list[ErrorRow]:
    """Rows of `<prefix>_failures.csv`."""
    with path.open(newline="") as f:
        return [
            ErrorRow(row["Method"], row["Name"], row["Error"], int(row["Occurrences"]))
            for row in csv.DictReader(f)
        ]


def requests_by_kind(rows: Iterable[StatsRow]) -> Mapping[str, int]:
    """Requests per traffic type: every request name starts with `<kind>: ` (see locustfile)."""
    kinds: Counter[str] = Counter()
    for row in rows:
        if row.name != "Aggregated" and ": " in row.name:
            kinds[row.name.split(": ", 1)[0]] += row.requests
    return kinds
