"""otel-collector/collector.yaml, the collector config compose and Kubernetes share: no collector
binary runs here (its image cannot be pulled), so its shape is checked the way the collector
would on start: every component a pipeline names is configured, every configured one is used,
and the OTLP receiver listens where the services send (http/protobuf, 4318)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
CONFIG: dict[str, Any] = yaml.safe_load((ROOT / "otel-collector" / "collector.yaml").read_text())
KINDS = ("receivers", "processors", "exporters")
# The components of the core distribution (otel/opentelemetry-collector) this file may use.
CORE = {
    "receivers": {"otlp"},
    "processors": {"batch", "memory_limiter"},
    "exporters": {"debug", "otlp", "otlphttp"},
}


def test_every_pipeline_names_configured_components_and_every_component_is_used() -> None:
    pipelines = CONFIG["service"]["pipelines"]
    assert set(pipelines) == {"traces"}
    used: dict[str, set[str]] = {kind: set() for kind in KINDS}
    for pipeline in pipelines.values():
        for kind in KINDS:
            assert pipeline[kind], kind
            used[kind] |= set(pipeline[kind])
    for kind in KINDS:
        assert used[kind] == set(CONFIG[kind]), kind
        # `name/suffix` is another instance of the same component.
        assert {name.split("/")[0] for name in CONFIG[kind]} <= CORE[kind], kind
    assert set(CONFIG) <= {*KINDS, "service", "extensions", "connectors"}


def test_the_receiver_takes_otlp_over_http_on_4318() -> None:
    protocols = CONFIG["receivers"]["otlp"]["protocols"]
    assert set(protocols) == {"http"}  # the services export http/protobuf only
    assert protocols["http"]["endpoint"] == "0.0.0.0:4318"


def test_memory_is_limited_before_anything_is_batched() -> None:
    processors = CONFIG["service"]["pipelines"]["traces"]["processors"]
    assert processors[0] == "memory_limiter"
    limiter = CONFIG["processors"]["memory_limiter"]
    assert 0 < limiter["limit_percentage"] < 100
    assert 0 < limiter["spike_limit_percentage"] < limiter["limit_percentage"]
