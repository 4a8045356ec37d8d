"""The gateway's access lines of one load run, and what each answer was.

wrk reports one latency distribution for every answer; an overload run needs three: the requests
the cluster admitted, those it refused, and those it failed. nginx writes one JSON line per
request (nginx/gateway/http.conf, `log_format gateway`) with its status, `request_time` (from
the first byte read to the last byte sent, so the time queued in a service counts) and the
`Retry-After` it sent. The run marks its own requests with a User-Agent, so lines from anything
else on the gateway are left out.

Locally `make up` writes that stream to <state>/logs/nginx.log (supervisord rotates it at 50 MB:
the tail follows a rotation)."""

from __future__ import annotations

import json
import math
import os
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REFUSAL_STATUSES = frozenset({429, 503})
# nginx's status for a request whose client closed the connection before the answer: wrk does
# that to the requests in flight when a run ends, and to those it times out (which wrk counts
# itself, among the run's errors). Neither is an answer of the cluster's.
ABANDONED = 499


@dataclass(frozen=True)
class Answer:
    status: int
    ms: float
    retry_after: bool

    @property
    def kind(self) -> str:
        """admitted (< 400), refused (429/503 with Retry-After: the cluster declined the work and
        said when to come back), abandoned (499: the client left first) or error (any other
        answer >= 400)."""
        if self.status < 400:
            return "admitted"
        if self.status == ABANDONED:
            return "abandoned"
        if self.status in REFUSAL_STATUSES and self.retry_after:
            return "refused"
        return "error"


class LogTail:
    """The lines appended to a log after `start()`, across one rotation by rename."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file = path.open("rb")
        self._file.seek(0, os.SEEK_END)
        self._inode = os.fstat(self._file.fileno()).st_ino

    def read(self) -> list[bytes]:
        """Complete lines appended since the last read."""
        chunks = [self._file.read()]
        try:
            current = self.path.stat().st_ino
        except FileNotFoundError:
            current = self._inode
        if current != self._inode:  # rotated: the rest of the old file, then the new one
            self._file.close()
            self._file = self.path.open("rb")
            self._inode = current
            chunks.append(self._file.read())
        data = b"".join(chunks)
        complete, _, partial = data.rpartition(b"\n")
        if partial:  # a line being written: read it next time
            self._file.seek(-len(partial), os.SEEK_CUR)
        return complete.split(b"\n") if complete else []

    def close(self) -> None:
        self._file.close()


def answers(lines: Iterable[bytes], user_agent: str) -> Iterator[Answer]:
    """The answers to the requests that carried `user_agent`; other lines are skipped."""
    for raw in lines:
        if user_agent.encode() not in raw:
            continue
        try:
            line: dict[str, Any] = json.loads(raw)
        except ValueError:
            continue
        if line.get("user_agent") != user_agent:
            continue
        yield Answer(
            status=int(line["status"]),
            ms=1000 * float(line["request_time"]),
            retry_after=bool(line.get("retry_after")),
        )


def percentile(values: Sequence[float], q: float) -> float | None:
    """The nearest-rank percentile (q in 0..100) of values; None when there are none."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


@dataclass
class Outcomes:
    """A run's answers by kind, with the latency of each kind."""

    admitted_ms: list[float] = field(default_factory=list)
    refused_ms: list[float] = field(default_factory=list)
    errors: Counter[int] = field(default_factory=Counter)
    abandoned: int = 0

    @classmethod
    def of(cls, found: Iterable[Answer]) -> Outcomes:
        outcomes = cls()
        for answer in found:
            kind = answer.kind
            if kind == "admitted":
                outcomes.admitted_ms.append(answer.ms)
            elif kind == "refused":
                outcomes.refused_ms.append(answer.ms)
            elif kind == "abandoned":
                outcomes.abandoned += 1
            else:
                outcomes.errors[answer.status] += 1
        return outcomes

    @property
    def total(self) -> int:
        return (
            len(self.admitted_ms)
            + len(self.refused_ms)
            + sum(self.errors.values())
            + self.abandoned
        )

    def good(self, within_ms: float) -> int:
        """Admitted and answered within `within_ms`: the goodput's numerator."""
        return sum(1 for ms in self.admitted_ms if ms <= within_ms)
