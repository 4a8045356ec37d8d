"""The per-day ledger's share of the buffer: increments by (page, UTC day), sent in batches.

Independent of the Redis side: MySQL down only delays the ledger, Redis down only delays the
totals, and each converges when its store returns. A batch keeps its id until MySQL confirms it,
so a retry after a lost COMMIT reply is recognised (counter_ledger_batches) and not added twice.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass

from services.counter.buffer import take_up_to

LedgerKey = tuple[str, dt.date]


@dataclass
class LedgerBatch:
    batch_id: str
    deltas: dict[LedgerKey, int]


class LedgerBuffer:
    def __init__(self) -> None:
        self.pending: dict[LedgerKey, int] = {}
        self.unconfirmed: LedgerBatch | None = None

    def add(self, page_id: str, day: dt.date, count: int = 1) -> None:
        key = (page_id, day)
        self.pending[key] = self.pending.get(key, 0) + count

    def next_batch(self, max_rows: int) -> LedgerBatch | None:
        if self.unconfirmed is not None:
            return self.unconfirmed
        if not self.pending:
            return None
        deltas, self.pending = take_up_to(self.pending, max_rows)
        self.unconfirmed = LedgerBatch(uuid.uuid4().hex, deltas)
        return self.unconfirmed

    def confirm(self) -> None:
        self.unconfirmed = None

    @property
    def outstanding(self) -> int:
        sent = sum(self.unconfirmed.deltas.values()) if self.unconfirmed else 0
        return sent + sum(self.pending.values())
