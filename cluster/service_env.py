"""The environment of one local service instance: the stores, the secrets and the peers its entry
in services/common/description.py names, plus the caller's own <SERVICE>_ settings."""

from __future__ import annotations

import os

from cluster.topology import Instance, Topology
from services.common import description

# Variables passed through from the caller's environment to every service: two names, and the
# OpenTelemetry SDK's own (`OTEL_TRACES_EXPORTER=console make up`: docs/tracing.md).
_PASSTHROUGH = ("LOG_LEVEL", "ENVIRONMENT")
_PASSTHROUGH_PREFIXES = ("OTEL_",)


def service_env(topo: Topology, instance: Instance, mysql_dsn: str) -> dict[str, str]:
    spec = description.service(instance.service)
    env = {
        key: value
        for key, value in os.environ.items()
        if key.startswith((spec.env_prefix, *_PASSTHROUGH_PREFIXES)) or key in _PASSTHROUGH
    }
    if spec.redis:
        env["REDIS_SHARDS"] = topo.redis_shards
    if spec.mysql:
        env["MYSQL_DSN"] = mysql_dsn
    env.update(
        ADMIN_TOKEN=topo.admin_token(),
        WEB_CONCURRENCY=str(topo.settings.WORKERS),
        PROMETHEUS_MULTIPROC_DIR=str(topo.state / "metrics" / instance.name),
        PYTHONUNBUFFERED="1",
    )
    env.setdefault("ENVIRONMENT", "development")
    for name in spec.secrets:
        env[name] = os.environ.get(name) or topo.secret(name.lower())
    # Peers through the gateway's internal listener: nginx balances over their instances.
    for peer in spec.peers:
        var = f"{peer.upper()}_URL"
        env[var] = os.environ.get(var) or f"http://127.0.0.1:{topo.internal_port}"
    # What only the local cluster knows, for two services: where the dataset's images are, and
    # the demo upstream (the work simulator, not behind the gateway).
    if spec.name == "banner":
        env["BANNER_IMAGES_DIR"] = os.pathsep.join(str(d / "images") for d in topo.banner_data())
    if spec.name == "aggregator":
        env.setdefault("AGGREGATOR_UPSTREAM_URL", f"http://127.0.0.1:{topo.worksim_port}/")
    return env
