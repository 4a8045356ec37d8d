"""The configuration reference names every setting the code reads (no drift)."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic_settings import BaseSettings

from cluster.topology import ClusterSettings
from services.common.settings import ServiceSettings
from services.counter.settings import CounterSettings

DOC = (Path(__file__).resolve().parents[2] / "docs" / "configuration.md").read_text()


def _env_names(cls: type[BaseSettings]) -> list[str]:
    prefix = str(cls.model_config.get("env_prefix", ""))
    return [
        str(field.validation_alias) if field.validation_alias else prefix + name
        for name, field in cls.model_fields.items()
    ]


@pytest.mark.parametrize("cls", [ServiceSettings, CounterSettings, ClusterSettings])
def test_every_setting_is_documented(cls: type[BaseSettings]) -> None:
    missing = [name for name in _env_names(cls) if f"`{name}`" not in DOC]
    if cls is ServiceSettings:
        # Service-prefixed knobs of the base class are documented with the counter's prefix.
        missing = [n for n in missing if f"`COUNTER_{n}`" not in DOC]
    assert not missing
