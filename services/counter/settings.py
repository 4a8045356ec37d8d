from __future__ import annotations

from typing import Literal

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from services.common.settings import ServiceSettings


class CounterSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="COUNTER_", extra="ignore", frozen=True)

    # How often each process pushes its buffered increments to Redis, and polls the ledger streams.
    FLUSH_INTERVAL_S: float = Field(1.0, gt=0, le=3600)
    # How long a count read from a shard is served from memory ("served_via": "in_memory").
    CACHE_TTL_S: float = Field(5.0, ge=0, le=3600)
    CACHE_SIZE: int = Field(100_000, ge=1)
    # "batch": a POST is answered once buffered; "commit": once its increment is in Redis.
    ACK: Literal["batch", "commit"] = "batch"
    # commit mode: how long a POST waits for the commit before answering 202 (queued).
    COMMIT_TIMEOUT_S: float = Field(2.0, gt=0, le=60)
    # Increments a process may hold for one shard that are not yet in Redis; beyond it POSTs for
    # that shard's pages get 503 (the other shards' pages are not affected).
    MAX_PENDING: int = Field(100_000, ge=1)
    # Upper bound of keys in one Redis script call and rows in one ledger statement.
    BATCH_KEYS: int = Field(2_000, ge=1, le=100_000)
    # A failing flush is retried with exponential backoff up to this.
    RETRY_MAX_S: float = Field(5.0, gt=0, le=300)
    # On shutdown, how long to keep retrying the final flush: most of gunicorn's graceful
    # timeout (30 s), so a slow MySQL or Redis at that moment costs time, not visits.
    SHUTDOWN_FLUSH_S: float = Field(25.0, ge=0, le=300)
    # The ledger stream of a shard (batches in Redis not yet in MySQL) holds at most this many
    # payload bytes; beyond it the shard refuses batches until MySQL has caught up (backpressure).
    LEDGER_MAX_BACKLOG_BYTES: int = Field(64 * 1024 * 1024, ge=1)
    # A ledger entry a consumer read but did not finish is taken over by another after this long:
    # longer than a live consumer can hold one (LEDGER_TIMEOUT_S and a Redis round trip).
    LEDGER_CLAIM_IDLE_S: float = Field(15.0, gt=0, le=3600)
    # Stream entries read per round trip by a ledger feeder.
    LEDGER_READ_COUNT: int = Field(100, ge=1, le=10_000)
    # The longest one ledger transaction may take before it is abandoned and retried.
    LEDGER_TIMEOUT_S: float = Field(5.0, gt=0, le=300)
    # Daily ledger rows older than this many days are deleted (0: kept for ever). The daily
    # endpoint reads at most 366 days back, so the default deletes nothing any answer uses; the
    # all-time totals are the Redis counts, which are never deleted.
    LEDGER_RETENTION_DAYS: int = Field(400, ge=0, le=100_000)
    # The longest GET /visits/{id}/daily waits for MySQL before answering 503.
    DAILY_TIMEOUT_S: float = Field(2.0, gt=0, le=60)
