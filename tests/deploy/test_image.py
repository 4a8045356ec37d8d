"""The container image: what the Dockerfile promises (pinned base, dependencies before code,
non-root, healthcheck, gunicorn entrypoint), that its runtime dependencies cover every import of
the services, and that gunicorn's config picks the service the way the image runs it; then the
image itself, built (or reused) by `make image`'s code with a real Docker engine: its user, a
read-only root every service imports on, its healthcheck, and the healthchecks docker-compose.yml
gives the services of this image, run inside it against the test cluster."""

from __future__ import annotations

import ast
import re
import runpy
import sys
import time
import tomllib
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest
import yaml
from packaging.requirements import Requirement

from cluster.image import build
from cluster.service_env import service_env
from services.common import gunicorn_conf
from tests.support import docker
from tests.support.cluster import RunningCluster
from tests.support.processes import free_port

ROOT = Path(__file__).resolve().parents[2]
# Executed afresh per test (the module reads its environment when it runs).
GUNICORN_CONF = gunicorn_conf.__file__
DOCKERFILE = (ROOT / "Dockerfile").read_text()
INSTRUCTIONS = [
    line
    for line in re.sub(r"\\\n", " ", DOCKERFILE).splitlines()
    if line.strip() and not line.lstrip().startswith("#")
]


def _stage(name: str) -> list[str]:
    start = next(i for i, line in enumerate(INSTRUCTIONS) if line.endswith(f" AS {name}"))
    end = next(
        (i for i in range(start + 1, len(INSTRUCTIONS)) if INSTRUCTIONS[i].startswith("FROM ")),
        len(INSTRUCTIONS),
    )
    return INSTRUCTIONS[start:end]


def test_the_bases_are_pinned_releases() -> None:
    for arg in re.findall(r"^ARG [A-Z_]+_IMAGE=(\S+)$", DOCKERFILE, flags=re.MULTILINE):
        tag = arg.partition(":")[2]
        assert tag not in {"", "latest"}, arg
        assert re.search(r"\d+\.\d+\.\d+|\d{8}", tag), f"{arg}: not a patch release"


def test_dependencies_are_installed_before_the_code_is_copied() -> None:
    deps = _stage("deps")
    copy_lock = next(i for i, line in enumerate(deps) if "requirements.lock" in line)
    install = next(i for i, line in enumerate(deps) if "pip install" in line)
    assert copy_lock < install
    assert not any("services" in line for line in deps if line.startswith("COPY"))
    assert "-c requirements.lock" in deps[install]


def test_the_service_stage_is_the_default_runs_as_non_root_and_has_a_healthcheck() -> None:
    last_from = [line for line in INSTRUCTIONS if line.startswith("FROM ")][-1]
    assert last_from.endswith(" AS service")
    service = _stage("service")
    users = [line.split()[1] for line in service if line.startswith("USER ")]
    assert users
    assert not users[-1].startswith(("0", "root"))
    assert any(
        line.startswith("HEALTHCHECK ") and "services.common.probe" in line for line in service
    )
    env = " ".join(line for line in service if line.startswith("ENV "))
    assert "PYTHONUNBUFFERED=1" in env
    assert "WEB_CONCURRENCY=" in env
    entrypoint = next(line for line in service if line.startswith("ENTRYPOINT "))
    assert '"gunicorn", "-c", "python:services.common.gunicorn_conf"' in entrypoint
    assert any(line.strip() == "STOPSIGNAL SIGTERM" for line in service)


def test_dockerignore_lets_in_only_what_the_image_needs() -> None:
    rules = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert rules[0] == "*"
    allowed = {rule[1:].rstrip("/") for rule in rules if rule.startswith("!")}
    # wheelhouse/: only offline builds put one in the context (`make image`, docs/deploy.md).
    assert allowed == {"pyproject.toml", "requirements.lock", "services", "wheelhouse"}


def test_an_offline_build_only_adds_a_wheelhouse_and_pip_flags() -> None:
    deps = _stage("deps")
    assert any(
        line.startswith("COPY ") and "wheelhous[e]" in line and line.endswith(" /build/wheelhouse/")
        for line in deps
    )
    assert "ARG PIP_INSTALL_FLAGS=" in deps  # empty by default: PyPI, as any build
    assert build.IN_IMAGE_WHEELHOUSE == "/build/wheelhouse"
    assert "--no-index" not in DOCKERFILE.replace("--no-index --find-links=/build/wheelhouse", "")


def _runtime_closure() -> set[str]:
    """The distributions `pip install` of the runtime dependencies brings in."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    todo = [Requirement(r) for r in project["dependencies"]]
    # By name and extras: `uvicorn` reached first through uvicorn-worker must not hide what
    # `uvicorn[standard]` adds (uvloop, httptools).
    seen: set[tuple[str, frozenset[str]]] = set()
    while todo:
        req = todo.pop()
        name = req.name.lower().replace("_", "-")
        if (name, frozenset(req.extras)) in seen:
            continue
        seen.add((name, frozenset(req.extras)))
        for extra_req in metadata.requires(req.name) or []:
            sub = Requirement(extra_req)
            wanted = not sub.marker or any(
                sub.marker.evaluate({"extra": extra}) for extra in [*req.extras, ""]
            )
            if wanted:
                todo.append(sub)
    return {name for name, _ in seen}


def test_the_runtime_dependencies_cover_every_import_of_the_services() -> None:
    installed_by = metadata.packages_distributions()
    closure = _runtime_closure()
    missing = {}
    for path in (ROOT / "services").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules = [node.module]
            else:
                continue
            for module in modules:
                top = module.split(".")[0]
                if top in sys.stdlib_module_names or top == "services":
                    continue
                dists = {d.lower().replace("_", "-") for d in installed_by.get(top, [])}
                if not dists & closure:
                    missing[top] = str(path.relative_to(ROOT))
    assert missing == {}


def test_gunicorn_knows_every_service_of_the_cluster() -> None:
    # gunicorn's list is the description's: every package with an app is in it, and only those
    # (services/common/app.py is the kit's app factory).
    apps = {path.parent.name for path in (ROOT / "services").glob("*/app.py")} - {"common"}
    assert apps == set(gunicorn_conf.SERVICES), "add the service to services/common/description.py"


@pytest.mark.parametrize("service", gunicorn_conf.SERVICES)
def test_gunicorn_serves_the_service_the_image_names(
    service: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("QUARTET_SERVICE", service)
    monkeypatch.setenv("PORT", "8123")
    conf = runpy.run_path(GUNICORN_CONF)
    assert conf["wsgi_app"] == f"services.{service}.app:app"
    assert conf["bind"] == ["0.0.0.0:8123"]


def test_gunicorn_refuses_an_unknown_service(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QUARTET_SERVICE", "nope")
    with pytest.raises(SystemExit, match="expected one of"):
        runpy.run_path(GUNICORN_CONF)


def test_without_a_service_name_the_command_line_decides(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("QUARTET_SERVICE", raising=False)
    conf = runpy.run_path(GUNICORN_CONF)
    assert "wsgi_app" not in conf
    assert "bind" not in conf


# --- the image, for real -----------------------------------------------------------------------

COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
OUR_IMAGE = "${QUARTET_IMAGE:-quartet:local}"
HARDENED = docker.HARDENED


@pytest.fixture(scope="module")
def image() -> str:
    return docker.service_image()


def test_make_image_tags_the_image_it_built(image: str) -> None:
    report = docker.build_report()
    assert report.service.tags == ("quartet:local", image)
    assert docker.inspect("image", "quartet:local")["Id"] == report.service.image_id
    mtail = next(i for i in report.images if i.name == build.MTAIL_IMAGE)
    assert docker.inspect("image", mtail.tags[1])["Config"]["User"] == "65534:65534"
    assert any(line.startswith("bases: ") for line in report.lines())


def test_the_image_runs_as_a_non_root_user_on_a_read_only_root(image: str) -> None:
    assert docker.inspect("image", image)["Config"]["User"] == "10001:10001"
    script = (
        "id -u; id -g; touch /app/x 2>/dev/null && echo root-writable; touch /tmp/x && echo tmp"
    )
    options = [*HARDENED, "--network", "none", "--entrypoint", "sh"]
    ran = docker.run_once(image, "-c", script, options=options)
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.split() == ["10001", "10001", "tmp"]


@pytest.mark.parametrize("service", gunicorn_conf.SERVICES)
def test_every_service_imports_on_a_read_only_root(image: str, service: str) -> None:
    # Bytecode was compiled at build time; an import that wanted to write would fail here.
    options = [*HARDENED, "--network", "none", "--entrypoint", "python"]
    ran = docker.run_once(image, "-c", f"import services.{service}.app", options=options)
    assert ran.returncode == 0, ran.stderr


def test_tracing_switches_on_inside_the_image(image: str) -> None:
    # The SDK, the OTLP exporter (found by its entry point) and the instrumentations are runtime
    # dependencies; off they are never imported, so only switching tracing on shows they are there.
    script = (
        "from services.aggregator.app import build_app\n"
        "from services.aggregator.settings import AggregatorSettings\n"
        "from services.common import tracing\n"
        "build_app(AggregatorSettings(ADMIN_TOKEN='x' * 32))\n"
        "assert tracing._provider is not None and tracing.client_trace_configs()\n"
        "print(tracing.exporter_names())\n"
    )
    options = [*HARDENED, "--network", "none", "--entrypoint", "python"]
    options += [
        "-e",
        "OTEL_TRACES_EXPORTER=otlp",
        "-e",
        "OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:9",
    ]
    ran = docker.run_once(image, "-c", script, options=options)
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.strip().splitlines()[-1] == "['otlp_proto_http']"


def test_the_image_healthcheck_fails_when_nothing_serves(image: str) -> None:
    healthcheck = docker.inspect("image", image)["Config"]["Healthcheck"]
    assert healthcheck["Test"] == ["CMD", "python", "-m", "services.common.probe", "/healthz"]
    program, *args = healthcheck["Test"][1:]
    options = [*HARDENED, "--network", "none", "--entrypoint", program]
    ran = docker.run_once(image, *args, options=options)
    assert ran.returncode == 1


def _compose_services_of_our_image() -> dict[str, dict[str, Any]]:
    return {
        name: spec
        for name, spec in COMPOSE["services"].items()
        if spec.get("image") == OUR_IMAGE and "healthcheck" in spec
    }


def test_the_compose_services_of_our_image_are_the_servers() -> None:
    assert set(_compose_services_of_our_image()) == set(gunicorn_conf.SERVICES)


def _host_env(cluster: RunningCluster, service: str, port: int) -> tuple[dict[str, str], list[str]]:
    """The environment of an instance of `service` against the test cluster, in a container on
    the host's network, and the bind mounts it needs."""
    env = {"QUARTET_SERVICE": service, "PORT": str(port), "WEB_CONCURRENCY": "1"}
    mounts: list[str] = []
    instances = cluster.topo.instances_of(service) if service != "worksim" else []
    if instances:
        env.update(service_env(cluster.topo, instances[0], cluster.mysql_dsn))
        env.update(PORT=str(port), WEB_CONCURRENCY="1", ENVIRONMENT="test")
        env[f"{service.upper()}_MIGRATE_ON_START"] = "false"
    env["PROMETHEUS_MULTIPROC_DIR"] = docker.METRICS_DIR
    images = env.get("BANNER_IMAGES_DIR")
    if images and Path(images).is_dir():
        mounts += ["--volume", f"{images}:{images}:ro"]
    return env, mounts


@pytest.mark.parametrize("service", sorted(_compose_services_of_our_image()))
def test_the_compose_healthcheck_succeeds_inside_the_image(
    image: str, cluster: RunningCluster, service: str
) -> None:
    test = _compose_services_of_our_image()[service]["healthcheck"]["test"]
    assert test[0] == "CMD"
    env, mounts = _host_env(cluster, service, free_port())
    options = [*HARDENED, "--network", "host", *mounts]
    with docker.container(image, options=options, env=env) as container_id:
        deadline = time.monotonic() + 60
        while True:
            assert docker.state(container_id)["Running"], "the service exited"
            ran = docker.docker("exec", container_id, *test[1:], check=False, timeout_s=20)
            if ran.returncode == 0:
                break
            assert time.monotonic() < deadline, f"{test[1:]} still failing: {ran.stderr}"
            time.sleep(0.5)
