from __future__ import annotations

from typing import Self

from pydantic import Field, model_validator
from pydantic_settings import SettingsConfigDict

from services.common.settings import ServiceSettings
from services.recommender import scoring, store


class RecommenderSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="RECOMMENDER_", extra="ignore", frozen=True)

    WINDOW_DAYS: int = Field(scoring.WINDOW_DAYS, ge=1, le=3650)
    HALF_LIFE_DAYS: float = Field(scoring.HALF_LIFE_DAYS, gt=0, le=3650)
    # L1: per worker, bounded LRU with TTL.
    L1_SIZE: int = Field(50_000, ge=1)
    L1_TTL_S: float = Field(30.0, gt=0, le=86_400)
    # L2: Redis, keyed by user on the user's shard. Fresh for L2_TTL_S; kept L2_KEEP_S in all, so
    # a stale copy can answer while MySQL is down.
    L2_TTL_S: float = Field(300.0, gt=0, le=86_400)
    L2_KEEP_S: int = Field(86_400, ge=1)
    # Cluster-wide single flight: how long a loader may hold a user's lock.
    LOAD_LOCK_S: float = Field(2.0, gt=0, le=60)
    POPULARITY_REFRESH_S: float = Field(60.0, gt=0, le=86_400)
    BATCH_MAX: int = Field(100, ge=1, le=1000)
    # A miss reads at most this many of a user's most recent searches, and as many purchases, in
    # the window (aggregated in SQL): older ones do not count. Bounds every miss's work.
    MAX_EVENTS: int = Field(store.MAX_EVENTS, ge=1, le=100_000)
    # Retention (retention.py): events and idempotency keys older than RETENTION_DAYS (unset:
    # WINDOW_DAYS + 1) are deleted, RETENTION_BATCH rows a statement with RETENTION_PAUSE_S
    # between statements, one pass every RETENTION_INTERVAL_S (one instance at a time).
    RETENTION_DAYS: int | None = Field(None, ge=1, le=36_500)
    RETENTION_INTERVAL_S: float = Field(300.0, gt=0, le=86_400)
    RETENTION_BATCH: int = Field(10_000, ge=1, le=100_000)
    RETENTION_PAUSE_S: float = Field(0.2, ge=0, le=60)

    @model_validator(mode="after")
    def _retention_covers_the_window(self) -> Self:
        if self.RETENTION_DAYS is not None and self.RETENTION_DAYS < self.WINDOW_DAYS:
            raise ValueError(
                f"RECOMMENDER_RETENTION_DAYS ({self.RETENTION_DAYS}) is below"
                f" RECOMMENDER_WINDOW_DAYS ({self.WINDOW_DAYS}): scoring would lose events"
            )
        return self

    @property
    def retention_days(self) -> int:
        """Days an event (and its idempotency key) is kept: the window plus a day unless set."""
        return self.WINDOW_DAYS + 1 if self.RETENTION_DAYS is None else self.RETENTION_DAYS
