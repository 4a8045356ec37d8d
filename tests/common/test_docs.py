"""The configuration reference names every setting the code reads (no drift)."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic_settings import BaseSettings

from cluster.topology import ClusterSettings
from services.aggregator.settings import AggregatorSettings
from services.banner.settings import BannerSettings
from services.common.settings import ServiceSettings
from services.counter.settings import CounterSettings
from services.recommender.settings import RecommenderSettings
from tests.support.settings_env import env_name

DOC = (Path(__file__).resolve().parents[2] / "docs" / "configuration.md").read_text()
# The kit's per-service knobs are documented once, with the counter's prefix.
KIT_KNOBS = {name for name, f in ServiceSettings.model_fields.items() if not f.validation_alias}


def _undocumented(cls: type[BaseSettings]) -> list[str]:
    missing = []
    for name in cls.model_fields:
        env = env_name(cls, name)
        documented = (
            f"`{env}`" in DOC
            or f"`{env}`," in DOC
            or (name in KIT_KNOBS and f"`COUNTER_{name}`" in DOC)
        )
        if not documented:
            missing.append(env)
    return missing


@pytest.mark.parametrize(
    "cls",
    [
        ServiceSettings,
        CounterSettings,
        BannerSettings,
        RecommenderSettings,
        AggregatorSettings,
        ClusterSettings,
    ],
)
def test_every_setting_is_documented(cls: type[BaseSettings]) -> None:
    assert _undocumented(cls) == []
