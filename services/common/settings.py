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

from services.common import placeholders
from services.common.mysql import MysqlTarget

SHARD_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
REDIS_URL = re.compile(r"^(redis|rediss|unix)://.+")


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

    # hide_input_in_errors: a refused value is never echoed into the start-up error (a malformed
    # MYSQL_DSN holds a password).
    model_config = SettingsConfigDict(
        extra="ignore", frozen=True, env_file=None, hide_input_in_errors=True
    )

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
    # Adaptive admission control per worker (admission.py, docs/reliability.md): on by default,
    # because its floor of MIN_LIMIT requests in flight per worker is above what normal traffic
    # reaches, so it only ever refuses when latency has already risen under overload.
    ADMISSION: bool = True
    ADMISSION_MIN_LIMIT: int = Field(16, ge=1, le=100_000)
    ADMISSION_MAX_LIMIT: int = Field(1000, ge=1, le=100_000)
    ADMISSION_TOLERANCE: float = Field(2.0, ge=1, le=100)
    ADMISSION_FLOOR_MS: float = Field(40.0, ge=0, le=60_000)
    ADMISSION_WINDOW_S: float = Field(0.1, gt=0, le=60)
    ADMISSION_BASELINE_S: float = Field(30.0, gt=0, le=86_400)
    ADMISSION_FORGET_S: float = Field(2.0, gt=0, le=3_600)
    # How long a request may wait ahead of the worker, from the gateway's X-Request-Start stamp
    # (queue_delay.py): the target once the queue stands, the interval during a burst.
    ADMISSION_QUEUE_TARGET_MS: float = Field(50.0, gt=0, le=60_000)
    ADMISSION_QUEUE_INTERVAL_MS: float = Field(100.0, gt=0, le=60_000)

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
        if value:
            MysqlTarget.from_dsn(value)  # refuses a malformed one without showing it
        return value or None

    @model_validator(mode="after")
    def _admission_bounds(self) -> ServiceSettings:
        if self.ADMISSION_MIN_LIMIT > self.ADMISSION_MAX_LIMIT:
            prefix = self.model_config.get("env_prefix", "")
            raise ValueError(f"{prefix}ADMISSION_MIN_LIMIT is above {prefix}ADMISSION_MAX_LIMIT")
        if self.ADMISSION_QUEUE_TARGET_MS > self.ADMISSION_QUEUE_INTERVAL_MS:
            prefix = self.model_config.get("env_prefix", "")
            raise ValueError(
                f"{prefix}ADMISSION_QUEUE_TARGET_MS is above {prefix}ADMISSION_QUEUE_INTERVAL_MS"
            )
        return self

    @model_validator(mode="after")
    def _refuse_weak_secrets(self) -> ServiceSettings:
        """Every secret (each SecretStr setting, and MYSQL_DSN's password) at least 16
        characters, and outside development never a placeholder (placeholders.py)."""
        for name, value in vars(self).items():
            if not isinstance(value, SecretStr):
                continue
            env = f"{self.model_config.get('env_prefix', '')}{name}"
            alias = type(self).model_fields[name].validation_alias
            env = alias if isinstance(alias, str) else env
            secret = value.get_secret_value()
            if len(secret) < placeholders.MIN_LENGTH:
                raise ValueError(f"{env} must be at least {placeholders.MIN_LENGTH} characters")
            if self.ENVIRONMENT != "development" and placeholders.is_placeholder(secret):
                raise ValueError(f"{env} is a placeholder; set a real secret")
        if self.MYSQL_DSN and self.ENVIRONMENT != "development":
            password = MysqlTarget.from_dsn(self.MYSQL_DSN).password
            if placeholders.is_placeholder(password):
                raise ValueError("MYSQL_DSN's password is a placeholder; set a real secret")
        return self
