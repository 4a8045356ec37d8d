"""The deployments follow services/common/description.py: the generated Kubernetes files are
fresh, and what is written by hand (docker-compose.yml, the NetworkPolicies, the migration Jobs)
agrees with the description. A new service in the description makes these tests say what to add.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from cluster import manifests
from services.common.description import (
    CONTAINER_PORT,
    LIVENESS_PATH,
    READINESS_PATH,
    SERVICES,
    Service,
    names,
)
from tests.deploy.test_k8s import SECRET_KEYS, _allowed, _build, _main, _one, _pod

ROOT = Path(__file__).resolve().parents[2]
COMPOSE: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
POLICIES = "k8s/base/network-policies.yaml"
# Who calls every service besides its peers: the gateway proxies to it, Prometheus scrapes it.
CALLERS = ("gateway", "prometheus")


def _ids(spec: Service) -> str:
    return spec.name


# --- Kubernetes: generated -------------------------------------------------------------------


@pytest.mark.parametrize("path", sorted(manifests.generated()))
def test_the_generated_kubernetes_files_are_fresh(path: str) -> None:
    current = (ROOT / path).read_text() if (ROOT / path).exists() else None
    assert current == manifests.generated()[path], (
        f"{path} is missing or stale: run `python -m cluster.generate`"
    )


@pytest.mark.parametrize("spec", SERVICES, ids=_ids)
def test_each_deployment_carries_the_descriptions_facts(spec: Service) -> None:
    docs = _build("k8s")
    container = _main(docs, spec.name)
    resources = container["resources"]
    assert resources == {
        "requests": {"cpu": spec.resources.cpu_request, "memory": spec.resources.memory_request},
        "limits": {"cpu": spec.resources.cpu_limit, "memory": spec.resources.memory_limit},
    }
    assert container["ports"] == [{"name": "http", "containerPort": CONTAINER_PORT}]
    assert container["readinessProbe"]["httpGet"]["path"] == READINESS_PATH
    assert container["livenessProbe"]["httpGet"]["path"] == LIVENESS_PATH
    env = {var["name"]: var for var in container["env"]}
    assert ("MYSQL_DSN" in env) is spec.mysql
    for secret in spec.secrets:
        key = env[secret]["valueFrom"]["secretKeyRef"]["key"]
        assert key in SECRET_KEYS, (
            f"{spec.name} reads {secret} from the key {key!r} of quartet-secrets: add it to the "
            "documented keys (docs/deploy.md, scripts/make-env.sh, tests/deploy/test_k8s.py)"
        )
    for peer in spec.peers:
        assert env[f"{peer.upper()}_URL"]["value"] == f"http://{peer}:{CONTAINER_PORT}"
    assert _one(docs, "Service", spec.name)["spec"]["ports"][0]["port"] == CONTAINER_PORT


# --- Kubernetes: written by hand, checked ----------------------------------------------------


@pytest.mark.parametrize("spec", SERVICES, ids=_ids)
def test_the_network_policies_admit_exactly_the_descriptions_callers(spec: Service) -> None:
    docs = _build("k8s")
    for caller in CALLERS:
        assert _allowed(docs, caller, spec.name, CONTAINER_PORT), (
            f"{caller} may not reach {spec.name}: admit it in {POLICIES}"
        )
    for other in SERVICES:
        expected = spec.name in other.peers
        assert _allowed(docs, other.name, spec.name, CONTAINER_PORT) is expected, (
            f"{other.name} {'calls' if expected else 'does not call'} {spec.name} "
            f"(its peers: {other.peers}): {'admit' if expected else 'do not admit'} it in the "
            f"policy that selects {spec.name} in {POLICIES}"
        )


@pytest.mark.parametrize("spec", SERVICES, ids=_ids)
def test_the_network_policies_open_the_stores_a_service_uses(spec: Service) -> None:
    docs = _build("k8s")
    for store, port, uses in (("redis", 6379, spec.redis), ("mysql", 3306, spec.mysql)):
        assert _allowed(docs, spec.name, store, port) is uses, (
            f"{spec.name} {'uses' if uses else 'does not use'} {store}: "
            f"{'add it to' if uses else 'remove it from'} the NetworkPolicy {store!r} in {POLICIES}"
        )


def test_the_migration_jobs_migrate_every_service() -> None:
    expected = ["python", "-m", "services.common.migrations", *names()]
    migrations = _pod(_one(_build("k8s"), "Job", "migrations"))["containers"][0]
    assert migrations["command"] == expected, "k8s/base/migrations.yaml: list every service"
    demo = _pod(_one(_build("k8s"), "Job", "demo-data"))["initContainers"][0]
    assert demo["command"] == expected, "k8s/components/demo/demo-data.yaml: list every service"
    assert COMPOSE["migrate"]["entrypoint"] == expected, (
        "docker-compose.yml, migrate: list every service"
    )


def test_the_aggregators_demo_upstream_is_the_work_simulator() -> None:
    # Moved out of the generated manifest into k8s/components/demo: still set in both variants.
    for path in ("k8s", "k8s/overlays/dev"):
        env = {v["name"]: v.get("value") for v in _main(_build(path), "aggregator")["env"]}
        assert env["AGGREGATOR_UPSTREAM_URL"] == f"http://worksim:{CONTAINER_PORT}/", path


# --- docker-compose.yml: written by hand, checked -------------------------------------------


def _compose_env(name: str) -> dict[str, str]:
    return {key: str(value) for key, value in COMPOSE[name].get("environment", {}).items()}


def test_compose_runs_exactly_the_descriptions_services_behind_the_gateway() -> None:
    running = {name for name, spec in COMPOSE.items() if "QUARTET_SERVICE" in _compose_env(name)}
    assert running == {*names(), "worksim"}, (
        "docker-compose.yml: one service per entry of services/common/description.py "
        "(`<<: *service`, QUARTET_SERVICE=<name>)"
    )
    waits = set(COMPOSE["gateway"]["depends_on"])
    assert waits == set(names()), (
        "docker-compose.yml, gateway.depends_on: every service, `condition: service_healthy`"
    )


@pytest.mark.parametrize("spec", SERVICES, ids=_ids)
def test_each_compose_service_is_set_up_as_described(spec: Service) -> None:
    where = f"docker-compose.yml, services.{spec.name}"
    assert spec.name in COMPOSE, f"{where}: missing (copy another service's block)"
    service = COMPOSE[spec.name]
    env = _compose_env(spec.name)
    assert env.get("QUARTET_SERVICE") == spec.name, f"{where}: QUARTET_SERVICE: {spec.name}"
    # The migrate job applies the schema once, before any replica starts.
    flag = f"{spec.env_prefix}MIGRATE_ON_START"
    assert env.get(flag) == "false", f'{where}: {flag}: "false" (the migrate job does it)'
    assert service["healthcheck"]["test"][-1] == READINESS_PATH, (
        f"{where}: healthcheck on {READINESS_PATH} (`<<: *service`)"
    )
    assert ("MYSQL_DSN" in env) or not spec.mysql, f"{where}: MYSQL_DSN (`<<: *service-env`)"
    assert "REDIS_SHARDS" in env or not spec.redis, f"{where}: REDIS_SHARDS (`<<: *service-env`)"
    for secret in spec.secrets:
        assert env.get(secret, "").startswith(f"${{{secret}:?"), (
            f"{where}: {secret}: ${{{secret}:?set {secret} in .env}}"
        )
        assert secret in COMPOSE["secrets-check"]["entrypoint"], (
            f"docker-compose.yml, secrets-check: check {secret} (entrypoint and environment)"
        )
    for peer in spec.peers:
        url = f"{peer.upper()}_URL"
        assert env.get(url) == f"http://{peer}:{CONTAINER_PORT}", (
            f"{where}: {url}: http://{peer}:{CONTAINER_PORT}"
        )
