"""The environment names each service's settings read, for the deployment drift checks."""

from __future__ import annotations

from pydantic_settings import BaseSettings

from services.aggregator.settings import AggregatorSettings
from services.banner.settings import BannerSettings
from services.counter.settings import CounterSettings
from services.recommender.settings import RecommenderSettings

SETTINGS: dict[str, type[BaseSettings]] = {
    "counter": CounterSettings,
    "banner": BannerSettings,
    "recommender": RecommenderSettings,
    "aggregator": AggregatorSettings,
}
# The OpenTelemetry SDK's own variables the deployments set (services/common/tracing.py reads
# them through the SDK, not through the settings classes).
OTEL_ENV = frozenset(
    {
        "OTEL_TRACES_EXPORTER",
        "OTEL_EXPORTER_OTLP_PROTOCOL",
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_TRACES_SAMPLER",
        "OTEL_TRACES_SAMPLER_ARG",
    }
)
# Read by the image's runtime (gunicorn_conf.py, the probe, Python, the OpenTelemetry SDK), not by
# the settings classes.
RUNTIME_ENV = (
    frozenset(
        {
            "QUARTET_SERVICE",
            "PORT",
            "WEB_CONCURRENCY",
            "PROMETHEUS_MULTIPROC_DIR",
            "PYTHONUNBUFFERED",
        }
    )
    | OTEL_ENV
)


def env_name(cls: type[BaseSettings], field: str) -> str:
    """The variable a settings field is read from: its alias, else the prefix and its name."""
    info = cls.model_fields[field]
    prefix = str(cls.model_config.get("env_prefix", ""))
    return str(info.validation_alias) if info.validation_alias else prefix + field


def env_names(service: str) -> set[str]:
    """Every variable the service's settings accept."""
    cls = SETTINGS[service]
    return {env_name(cls, field) for field in cls.model_fields}


def required_env(service: str) -> set[str]:
    """The variables without a default: a deployment that leaves one out cannot start."""
    cls = SETTINGS[service]
    return {env_name(cls, field) for field, info in cls.model_fields.items() if info.is_required()}
