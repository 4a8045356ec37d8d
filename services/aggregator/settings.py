from __future__ import annotations

from pydantic import AnyHttpUrl, Field
from pydantic_settings import SettingsConfigDict

from services.common.description import WORKSIM
from services.common.settings import ServiceSettings


class AggregatorSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="AGGREGATOR_", extra="ignore", frozen=True)

    # The "work" server the fan-out endpoints call (the local cluster runs the simulator).
    UPSTREAM_URL: AnyHttpUrl = AnyHttpUrl(f"http://127.0.0.1:{WORKSIM.local_port}/")
    # Peers of the page composition, by URL (cluster-wide names).
    BANNER_URL: AnyHttpUrl = Field(
        AnyHttpUrl("http://127.0.0.1:8081"), validation_alias="BANNER_URL"
    )
    COUNTER_URL: AnyHttpUrl = Field(
        AnyHttpUrl("http://127.0.0.1:8081"), validation_alias="COUNTER_URL"
    )
    RECOMMENDER_URL: AnyHttpUrl = Field(
        AnyHttpUrl("http://127.0.0.1:8081"), validation_alias="RECOMMENDER_URL"
    )
    # The largest `timeout` a caller may ask for, and smart's bound when it gives none.
    MAX_TIMEOUT_MS: int = Field(10_000, ge=1, le=120_000)
    # smart: how long the first call runs alone before two more are fired.
    HEDGE_MS: int = Field(300, ge=0, le=60_000)
    PAGE_TIMEOUT_MS: int = Field(1_000, ge=1, le=120_000)
    # Connections per worker to the upstream and to each peer (waiting for one counts against
    # the caller's deadline).
    POOL_SIZE: int = Field(256, ge=1, le=10_000)
    # The fan-out is the expensive endpoint: the cluster-wide in-flight cap is on by default.
    INFLIGHT_LIMIT: int = Field(2_000, ge=0)
