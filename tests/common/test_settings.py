from __future__ import annotations

import pytest
from pydantic import ValidationError

from services.common.settings import ServiceSettings, parse_shards

TOKEN = "a-real-token-of-enough-length"


def test_shards_parse_in_order_with_stable_names() -> None:
    shards = parse_shards("redis_7070=redis://127.0.0.1:7070, redis_7071=redis://10.0.0.2:6379/0")
    assert list(shards.items()) == [
        ("redis_7070", "redis://127.0.0.1:7070"),
        ("redis_7071", "redis://10.0.0.2:6379/0"),
    ]


@pytest.mark.parametrize(
    "raw",
    [
        "redis://127.0.0.1:7070",  # no name
        "a b=redis://x:1",  # bad name
        "a=http://x:1",  # not redis
        "a=redis://x:1,a=redis://y:1",  # duplicate
    ],
)
def test_bad_shard_lists_are_refused(raw: str) -> None:
    with pytest.raises(ValueError, match=r"shard|redis url"):
        parse_shards(raw)


def test_settings_read_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ADMIN_TOKEN", TOKEN)
    monkeypatch.setenv("REDIS_SHARDS", "s1=redis://127.0.0.1:1")
    monkeypatch.setenv("LOG_LEVEL", "debug")
    settings = ServiceSettings()
    assert settings.REDIS_SHARDS == {"s1": "redis://127.0.0.1:1"}
    assert settings.LOG_LEVEL == "DEBUG"


@pytest.mark.parametrize("token", ["short", "change-me-to-a-long-random-string"])
def test_weak_or_placeholder_tokens_are_refused_outside_development(
    monkeypatch: pytest.MonkeyPatch, token: str
) -> None:
    monkeypatch.setenv("ENVIRONMENT", "production")
    monkeypatch.setenv("ADMIN_TOKEN", token)
    with pytest.raises(ValidationError, match="ADMIN_TOKEN"):
        ServiceSettings()


def test_a_missing_token_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ADMIN_TOKEN", raising=False)
    with pytest.raises(ValidationError, match="ADMIN_TOKEN"):
        ServiceSettings()


def test_bad_mysql_dsn_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ADMIN_TOKEN", TOKEN)
    monkeypatch.setenv("MYSQL_DSN", "postgres://x")
    with pytest.raises(ValidationError, match="MYSQL_DSN"):
        ServiceSettings()
