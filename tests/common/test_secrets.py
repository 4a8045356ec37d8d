"""Secrets copied from an example are refused outside development, and no refusal shows a
character of the secret it refused."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from pydantic import ValidationError

from services.banner.settings import BannerSettings
from services.common.settings import ServiceSettings

GOOD = "a1b2c3d4e5f6a7b8c9d0"


def _settings(cls: type[ServiceSettings], **env: str) -> ServiceSettings:
    return cls(**env)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("ADMIN_TOKEN", "change-me-to-a-long-random-string"),
        ("ADMIN_TOKEN", "CHANGE_ME_PLEASE_0123456789"),
        ("MYSQL_DSN", "mysql://quartet:change-me@mysql:3306/quartet"),
    ],
)
def test_a_placeholder_is_refused_outside_development(field: str, value: str) -> None:
    env = {"ADMIN_TOKEN": GOOD, "MYSQL_DSN": f"mysql://quartet:{GOOD}@mysql:3306/quartet"}
    env[field] = value
    assert ServiceSettings(ENVIRONMENT="development", **env)  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="placeholder"):
        ServiceSettings(ENVIRONMENT="production", **env)  # type: ignore[arg-type]


def test_every_secret_setting_is_checked_the_cookie_secret_too() -> None:
    env = {"ADMIN_TOKEN": GOOD, "ENVIRONMENT": "production", "MYSQL_DSN": None}
    with pytest.raises(ValidationError, match="BANNER_COOKIE_SECRET is a placeholder"):
        BannerSettings(COOKIE_SECRET="example-cookie-secret-000", **env)  # type: ignore[arg-type]
    assert BannerSettings(COOKIE_SECRET=GOOD, **env)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "dsn",
    [
        "mysql://quartet:pass/word-SECRETPART@mysql/quartet",  # a '/' cuts the netloc
        "mysql://quartet:pa#ss-SECRETPART@mysql/quartet",  # '#' starts a fragment
        "mysql://quartet:SECRETPART@mysql:33o6/quartet",
        "postgres://quartet:SECRETPART@mysql/quartet",
    ],
)
def test_a_malformed_dsn_is_refused_without_showing_it(dsn: str) -> None:
    with pytest.raises(ValidationError) as refused:
        ServiceSettings(ADMIN_TOKEN=GOOD, MYSQL_DSN=dsn)
    assert "SECRETPART" not in str(refused.value)
    assert "must look like mysql://" in str(refused.value)


def test_the_start_up_error_of_a_service_does_not_show_the_dsn() -> None:
    env = {
        **os.environ,
        "ADMIN_TOKEN": GOOD,
        "MYSQL_DSN": "mysql://quartet:pass/word-SECRETPART@127.0.0.1/quartet",
        "REDIS_SHARDS": "a=redis://127.0.0.1:1",
    }
    started = subprocess.run(
        [sys.executable, "-c", "import services.counter.app as a; a.app"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert started.returncode != 0
    assert "must look like mysql://" in started.stderr
    assert "SECRETPART" not in started.stderr + started.stdout


def test_the_compose_check_names_the_placeholders_and_shows_none() -> None:
    env = {
        **os.environ,
        "ENVIRONMENT": "production",
        "MYSQL_PASSWORD": "change-me",
        "GRAFANA_ADMIN_PASSWORD": "Change-Me-0123456789",
        "MYSQL_ROOT_PASSWORD": GOOD,
    }
    env.pop("MYSQL_EXPORTER_PASSWORD", None)
    names = ["MYSQL_PASSWORD", "GRAFANA_ADMIN_PASSWORD", "MYSQL_ROOT_PASSWORD"]
    check = subprocess.run(
        [sys.executable, "-m", "services.common.placeholders", *names, "MYSQL_EXPORTER_PASSWORD"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert check.returncode == 1
    assert check.stderr.splitlines() == [
        "MYSQL_PASSWORD must be at least 16 characters",
        "GRAFANA_ADMIN_PASSWORD is a placeholder; set a real secret",
        "MYSQL_EXPORTER_PASSWORD is not set",
    ]
    assert "change-me" not in check.stderr.lower()
    good = {**env, "MYSQL_PASSWORD": GOOD, "GRAFANA_ADMIN_PASSWORD": GOOD}
    assert (
        subprocess.run(
            [sys.executable, "-m", "services.common.placeholders", *names],
            env=good,
            timeout=60,
            check=False,
        ).returncode
        == 0
    )
