"""The Docker engine, through its command-line client: every call has a deadline, and a failure
says which command failed and what the engine answered."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from typing import Any

ENGINE_TIMEOUT_S = 10.0
# The classic builder is what Debian's docker.io has; with BuildKit available the same Dockerfile
# builds there too.
_CLASSIC = {"DOCKER_BUILDKIT": "0"}


class EngineUnavailable(RuntimeError):
    """No Docker client, or no engine answering it."""


class DockerError(RuntimeError):
    """A docker command exited non-zero."""


def docker(
    *args: str,
    timeout_s: float = 120,
    check: bool = True,
    input_text: str | None = None,
    env: Mapping[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    client = shutil.which("docker")
    if client is None:
        raise EngineUnavailable(
            "no docker client on PATH (scripts/bootstrap.sh installs docker.io)"
        )
    result = subprocess.run(
        [client, *args],
        capture_output=True,
        text=True,
        timeout=timeout_s,
        input=input_text,
        env={**os.environ, **(env or {})},
        check=False,
    )
    if check and result.returncode != 0:
        raise DockerError(f"docker {' '.join(args)}: exit {result.returncode}\n{result.stderr}")
    return result


def engine_problem() -> str | None:
    """None when an engine answers `docker info`, otherwise why not."""
    try:
        result = docker(
            "info", "--format", "{{.ServerVersion}}", check=False, timeout_s=ENGINE_TIMEOUT_S
        )
    except EngineUnavailable as exc:
        return str(exc)
    except subprocess.TimeoutExpired:
        return f"`docker info` did not answer within {ENGINE_TIMEOUT_S:.0f} s"
    if result.returncode != 0 or not result.stdout.strip():
        return f"no Docker engine answers: {result.stderr.strip()}"
    return None


def require_engine() -> str:
    """The engine's version; raises EngineUnavailable with what to do when none answers."""
    problem = engine_problem()
    if problem:
        raise EngineUnavailable(
            f"{problem}\nAs root, scripts/bootstrap.sh (`make install`) installs docker.io and "
            "starts dockerd; otherwise start a Docker engine yourself."
        )
    return docker("info", "--format", "{{.ServerVersion}}").stdout.strip()


def inspect_image(ref: str) -> dict[str, Any] | None:
    result = docker("image", "inspect", ref, check=False, timeout_s=30)
    if result.returncode != 0:
        return None
    found: list[dict[str, Any]] = json.loads(result.stdout)
    return found[0]


def image_id(ref: str) -> str | None:
    found = inspect_image(ref)
    return None if found is None else str(found["Id"])


def build(
    tags: Sequence[str],
    context: str,
    *,
    dockerfile: str | None = None,
    target: str | None = None,
    build_args: Mapping[str, str] | None = None,
    dockerfile_text: str | None = None,
    timeout_s: float = 1200,
) -> None:
    """`docker build`; with dockerfile_text the Dockerfile comes on stdin and `context` is "-"
    (no context: the stand-in bases copy nothing)."""
    args = ["build", "--quiet"]
    for tag in tags:
        args += ["--tag", tag]
    if dockerfile:
        args += ["--file", dockerfile]
    if target:
        args += ["--target", target]
    for key, value in (build_args or {}).items():
        args += ["--build-arg", f"{key}={value}"]
    args.append(context)
    docker(*args, timeout_s=timeout_s, input_text=dockerfile_text, env=_builder_env())


def _builder_env() -> dict[str, str]:
    if "DOCKER_BUILDKIT" in os.environ:
        return {}
    has_buildx = (
        docker("buildx", "version", check=False, timeout_s=ENGINE_TIMEOUT_S).returncode == 0
    )
    return {} if has_buildx else _CLASSIC
