"""The container image: what the Dockerfile promises (pinned base, dependencies before code,
non-root, healthcheck, gunicorn entrypoint), that its runtime dependencies cover every import of
the services, and that gunicorn's config picks the service the way the image runs it."""

from __future__ import annotations

import ast
import re
import runpy
import sys
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from cluster.topology import SERVICES as CLUSTER_SERVICES
from services.common import gunicorn_conf

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
    assert allowed == {"pyproject.toml", "requirements.lock", "services"}


def _runtime_closure() -> set[str]:
    """The distributions `pip install` of the runtime dependencies brings in."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    todo = [Requirement(r) for r in project["dependencies"]]
    seen: set[str] = set()
    while todo:
        req = todo.pop()
        name = req.name.lower().replace("_", "-")
        if name in seen:
            continue
        seen.add(name)
        for extra_req in metadata.requires(req.name) or []:
            sub = Requirement(extra_req)
            wanted = not sub.marker or any(
                sub.marker.evaluate({"extra": extra}) for extra in [*req.extras, ""]
            )
            if wanted:
                todo.append(sub)
    return seen


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
    assert {spec.name for spec in CLUSTER_SERVICES} | {"worksim"} == set(gunicorn_conf.SERVICES)


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
