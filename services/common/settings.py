"""Settings shared by every service.

Cluster-wide values (the Redis shards, the MySQL DSN, the admin token) use the same environment
names in every service, so one `.env` configures the whole cluster. A service's own knobs carry its
name as a prefix (`COUNTER_FLUSH_INTERVAL_S`): subclasses set `env_prefix`.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

SHARD_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
REDIS_URL = re.compile(r"^(redis|rediss|unix)://.+")
# Words of the placeholders people copy from examples (.env.example says "change-me-..."): a
# cluster outside development refuses to start with one of them.
PLACEHOLDER_WORDS = ("changeme", "changethis", "placeholder", "example")


def parse_shards(raw: str) -> dict[str, str]:
    """Parse `name=url,name=url` into an ordered mapping, refusing duplicates and bad names."""
    shards: dict[str, str] = {}
    for item in (part.strip() for part in raw.split(",")):
        if not item:
            continue
        name, sep, url = item.partition("=")
        name, url = name.strip(), url.strip()
        if not sep or not SHARD_NAME.match(name):
            raise ValueError(f"bad shard entry {item!r}: expected name=redis://host:port")
        if not REDIS_URL.match(url):
            raise ValueError(f"bad redis url for shard {name!r}: {url!r}")
        if name in shards:
            raise ValueError(f"shard {name!r} is listed twice")
        shards[name] = url
    return shards


class ServiceSettings(BaseSettings):
    """The base every service's settings class extends."""

    model_config = SettingsConfigDict(extra="ignore", frozen=True, env_file=None)

    ENVIRONMENT: Literal["development", "test", "production"] = Field(
        "development", validation_alias="ENVIRONMENT"
    )
    LOG_LEVEL: str = Field("INFO", validation_alias="LOG_LEVEL")
    ADMIN_TOKEN: SecretStr = Field(validation_alias="ADMIN_TOKEN")
    REDIS_SHARDS: Annotated[dict[str, str], NoDecode] = Field(
        default_factory=dict, validation_alias="REDIS_SHARDS"
    )
    MYSQL_DSN: str | None = Field(None, validation_alias="MYSQL_DSN")

    # Service-prefixed knobs every service has.
    REDIS_POOL_SIZE: int = Field(64, ge=1, le=10_000)
    REDIS_TIMEOUT_S: float = Field(0.5, gt=0, le=30)
    MYSQL_POOL_SIZE: int = Field(4, ge=1, le=200)
    READY_TIMEOUT_S: float = Field(1.0, gt=0, le=10)
    # nginx writes the access log of every request (with the request id and upstream timing);
    # a second line per request from the service costs ~45 % of a trivial request's throughput
    # (docs/performance.md), so it is opt-in.
    ACCESS_LOG: bool = False
    MIGRATE_ON_START: bool = True
    # Cluster-wide cap on requests in flight for this service (0 = no cap); see limiter.py.
    INFLIGHT_LIMIT: int = Field(0, ge=0)
    INFLIGHT_LEASE_S: float = Field(30.0, gt=0, le=3600)
    # The longest the limiter waits for Redis before serving the request uncapped, and how long
    # it then stops asking (limiter.py): a stalled limiter shard never makes a request late.
    INFLIGHT_TIMEOUT_S: float = Field(0.05, gt=0, le=5)
    INFLIGHT_BACKOFF_S: float = Field(1.0, gt=0, le=300)
    # How often each worker checks its dependencies for `quartet_dependency_up` (health.py).
    DEPENDENCY_CHECK_INTERVAL_S: float = Field(5.0, gt=0, le=300)

    @field_validator("REDIS_SHARDS", mode="before")
    @classmethod
    def _parse_shards(cls, value: Any) -> Any:
        return parse_shards(value) if isinstance(value, str) else value

    @field_validator("LOG_LEVEL")
    @classmethod
    def _upper_level(cls, value: str) -> str:
        level = value.upper()
        if level not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
            raise ValueError(f"unknown log level {value!r}")
        return level

    @field_validator("MYSQL_DSN")
    @classmethod
    def _check_dsn(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith("mysql://"):
            raise ValueError("MYSQL_DSN must look like mysql://user:password@host:port/database")
        return value or None

    @model_validator(mode="after")
    def _refuse_weak_token(self) -> ServiceSettings:
        token = self.ADMIN_TOKEN.get_secret_value()
        if len(token) < 16:
            raise ValueError("ADMIN_TOKEN must be at least 16 characters")
        folded = re.sub(r"[^a-z]", "", token.lower())
        if self.ENVIRONMENT != "development" and any(w in folded for w in PLACEHOLDER_WORDS):
            raise ValueError("ADMIN_TOKEN is a placeholder; set a real secret")
        return self
