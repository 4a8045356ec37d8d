"""docker-compose.yml: valid against the Compose specification, and in step with the code (service
names, ports, environment names, secrets, mounted files, Prometheus jobs). No engine runs here, so
what compose would start is checked by its parts: the same configs run for real in
test_containers.py."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from services.common import tracing
from services.common.description import CONTAINER_PORT, names
from services.common.settings import parse_shards
from tests.support.settings_env import RUNTIME_ENV, env_names, required_env

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
COMPOSE: dict[str, Any] = yaml.safe_load(COMPOSE_FILE.read_text())
SERVICES_OF_COMPOSE: dict[str, Any] = COMPOSE["services"]
QUARTET = list(names())
PORT = CONTAINER_PORT  # the image's PORT (Dockerfile)


def _env(service: str) -> dict[str, str]:
    return {k: str(v) for k, v in SERVICES_OF_COMPOSE[service].get("environment", {}).items()}


def _jobs(config: Path) -> list[str]:
    return [job["job_name"] for job in yaml.safe_load(config.read_text())["scrape_configs"]]


def test_the_file_follows_the_compose_specification() -> None:
    result = subprocess.run(
        [
            str(Path(sys.executable).parent / "check-jsonschema"),
            "--builtin-schema",
            "vendor.compose-spec",
            str(COMPOSE_FILE),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("service", QUARTET)
def test_each_service_runs_its_app_with_two_replicas_and_a_readiness_check(service: str) -> None:
    spec = SERVICES_OF_COMPOSE[service]
    assert _env(service)["QUARTET_SERVICE"] == service
    assert spec["deploy"]["replicas"] == 2
    assert spec["healthcheck"]["test"][-1] == "/readyz"
    assert spec["deploy"]["resources"]["limits"].keys() >= {"cpus", "memory"}
    assert spec["restart"] == "unless-stopped"
    # Longer than gunicorn's graceful timeout, so the counter's buffer is flushed on a stop.
    assert int(spec["stop_grace_period"].rstrip("s")) > 30
    for dependency in spec["depends_on"].values():
        assert dependency["condition"] in {"service_healthy", "service_completed_successfully"}


@pytest.mark.parametrize("service", QUARTET)
def test_every_variable_a_service_gets_is_one_its_settings_read(service: str) -> None:
    given = set(_env(service))
    unknown = given - env_names(service) - RUNTIME_ENV
    assert unknown == set()
    assert required_env(service) <= given


def test_every_compose_service_has_a_healthcheck_or_is_a_job_or_a_sidecar() -> None:
    for name, spec in SERVICES_OF_COMPOSE.items():
        job = spec.get("restart") == "no" or "profiles" in spec
        sidecar = str(spec.get("network_mode", "")).startswith("service:")
        # Single static binaries, no shell or HTTP client to run a check with.
        bare = name.endswith("-exporter") or name == "otel-collector"
        assert "healthcheck" in spec or job or sidecar or bare, name
        assert "resources" in spec.get("deploy", {}) or job, name


def test_the_shards_are_the_redis_services_and_prometheus_scrapes_them_by_those_names() -> None:
    for service in QUARTET:
        shards = parse_shards(_env(service)["REDIS_SHARDS"])
        assert set(shards) == {"redis_7070", "redis_7071"}
        for name, url in shards.items():
            assert url == f"redis://{name}:6379"
            assert "--appendonly" in SERVICES_OF_COMPOSE[name]["command"]
    scrape = yaml.safe_load((ROOT / "prometheus" / "compose.yml").read_text())
    redis_job = next(j for j in scrape["scrape_configs"] if j["job_name"] == "redis")
    assert {t["labels"]["shard"] for t in redis_job["static_configs"]} == {
        "redis_7070",
        "redis_7071",
    }


def test_the_aggregator_reaches_its_upstream_on_the_image_port() -> None:
    # Its peers' URLs: tests/description/test_deployments.py, from the description.
    assert f"worksim:{PORT}" in _env("aggregator")["AGGREGATOR_UPSTREAM_URL"]


def test_every_required_secret_is_in_the_example_env_file() -> None:
    text = COMPOSE_FILE.read_text()
    required = set(re.findall(r"\$\{([A-Z][A-Z0-9_]*):\?", text))
    assert {"ADMIN_TOKEN", "MYSQL_PASSWORD", "BANNER_COOKIE_SECRET"} <= required
    example = (ROOT / ".env.example").read_text()
    listed = set(re.findall(r"^([A-Z][A-Z0-9_]*)=", example, flags=re.MULTILINE))
    assert required <= listed
    # Nothing secret is written into the compose file itself.
    for service in SERVICES_OF_COMPOSE.values():
        for key, value in service.get("environment", {}).items():
            if re.search(r"PASSWORD|TOKEN|SECRET", key):
                assert "${" in str(value), key


def test_every_file_the_stack_mounts_is_in_the_repository() -> None:
    for name, spec in SERVICES_OF_COMPOSE.items():
        for volume in spec.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (ROOT / source).exists() or source == "./loadtest/results", (name, source)
            else:
                assert source in COMPOSE["volumes"], (name, source)


def test_the_gateway_mounts_the_nginx_tree_and_publishes_only_the_public_port_widely() -> None:
    gateway = SERVICES_OF_COMPOSE["gateway"]
    assert "./nginx:/etc/quartet/nginx:ro" in gateway["volumes"]
    assert gateway["entrypoint"][-1] == "/etc/quartet/nginx/container-start.sh"
    for port in (p for s in SERVICES_OF_COMPOSE.values() for p in s.get("ports", [])):
        public = not str(port).startswith("127.0.0.1:")
        assert not public or str(port).endswith(":8080"), port


def test_prometheus_has_the_same_jobs_in_every_deployment() -> None:
    local = _jobs(ROOT / "prometheus" / "prometheus.yml")
    assert _jobs(ROOT / "prometheus" / "compose.yml") == local
    services = yaml.safe_load((ROOT / "prometheus" / "compose.yml").read_text())
    for job in services["scrape_configs"]:
        if job["job_name"] in QUARTET:
            assert job["dns_sd_configs"][0]["port"] == PORT


def test_the_compose_prometheus_config_is_valid() -> None:
    result = subprocess.run(
        ["promtool", "check", "config", str(ROOT / "prometheus" / "compose.yml")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_make_env_writes_every_secret_compose_needs_and_no_placeholder(tmp_path: Path) -> None:
    target = tmp_path / ".env"
    subprocess.run([str(ROOT / "scripts" / "make-env.sh"), str(target)], check=True)
    written = dict(
        line.split("=", 1) for line in target.read_text().splitlines() if re.match(r"^[A-Z]", line)
    )
    required = set(re.findall(r"\$\{([A-Z][A-Z0-9_]*):\?", COMPOSE_FILE.read_text()))
    for name in required:
        assert re.fullmatch(r"[0-9a-f]{48}", written[name]), name
    assert written["ENVIRONMENT"] == "production"
    assert target.stat().st_mode & 0o077 == 0
    # A second run must not overwrite the secrets of a running stack.
    again = subprocess.run([str(ROOT / "scripts" / "make-env.sh"), str(target)], check=False)
    assert again.returncode != 0


@pytest.mark.parametrize("name", ["redis_7070", "redis_7071", "mysql", *QUARTET, "migrate"])
def test_the_datastores_are_hardened_like_the_services(name: str) -> None:
    spec = SERVICES_OF_COMPOSE[name]
    assert spec["cap_drop"] == ["ALL"]
    assert "no-new-privileges:true" in spec["security_opt"]
    assert spec["read_only"] is True
    if name.startswith("redis") or name == "mysql":
        # Not root from the start: the images' entrypoints then need no chown, su-exec or gosu,
        # which cap_drop ALL would refuse.
        assert not str(spec["user"]).startswith("0")


def test_every_shard_has_a_memory_bound_below_its_limit_and_never_evicts() -> None:
    for name in ("redis_7070", "redis_7071"):
        spec = SERVICES_OF_COMPOSE[name]
        command = spec["command"]
        bound = command[command.index("--maxmemory") + 1]
        assert command[command.index("--maxmemory-policy") + 1] == "noeviction"
        limit = spec["deploy"]["resources"]["limits"]["memory"]
        assert _bytes(bound) < _bytes(limit) * 0.75  # room for the AOF rewrite's fork


def _bytes(size: str) -> int:
    found = re.fullmatch(r"(\d+)([kmgKMG])[bB]?", size)
    assert found is not None, size
    return int(found[1]) << (10 * (1 + "kmg".index(found[2].lower())))


def test_nothing_holding_a_secret_starts_before_the_secrets_check() -> None:
    check = SERVICES_OF_COMPOSE["secrets-check"]
    checked = set(check["entrypoint"][3:])
    assert checked == set(check["environment"]) - {"ENVIRONMENT"}
    assert check["network_mode"] == "none"
    # Every secret .env.example leaves to be set is checked.
    example = (ROOT / ".env.example").read_text()
    placeholders = set(re.findall(r"^([A-Z_]+)=change-me", example, re.M))
    assert placeholders <= checked
    for name in ("mysql", "grafana"):
        assert SERVICES_OF_COMPOSE[name]["depends_on"]["secrets-check"] == {
            "condition": "service_completed_successfully"
        }
    # The services come after mysql (migrate waits for it), so after the check too.
    assert "mysql" in SERVICES_OF_COMPOSE["migrate"]["depends_on"]


def _defaults(value: str) -> str:
    """A value as compose fills it when the variable is unset: `${NAME:-default}` -> default."""
    return re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", value)


@pytest.mark.parametrize("service", QUARTET)
def test_every_service_sends_its_spans_to_the_collector(service: str) -> None:
    env = {name: _defaults(value) for name, value in _env(service).items()}
    assert tracing.exporter_names(env) == ["otlp_proto_http"]
    assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://otel-collector:4318"
    assert env["OTEL_TRACES_SAMPLER"] == "traceidratio"
    assert 0 < float(env["OTEL_TRACES_SAMPLER_ARG"]) <= 1
    collector = SERVICES_OF_COMPOSE["otel-collector"]
    assert set(collector["networks"]) & set(SERVICES_OF_COMPOSE[service]["networks"])


def test_the_collector_runs_the_repositorys_config_unpublished() -> None:
    collector = SERVICES_OF_COMPOSE["otel-collector"]
    assert collector["image"].startswith("otel/opentelemetry-collector:")
    assert "ports" not in collector  # the services reach it on the backend network only
    assert collector["networks"] == ["backend"]
    (arg,) = (a for a in collector["command"] if a.startswith("--config="))
    mounts = dict(v.rsplit(":", 1)[0].split(":", 1)[::-1] for v in collector["volumes"])
    source = mounts[arg.removeprefix("--config=")]
    assert (ROOT / source).resolve() == ROOT / "otel-collector" / "collector.yaml"
    assert collector["read_only"] is True
    assert collector["cap_drop"] == ["ALL"]
