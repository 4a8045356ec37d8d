"""Which base images a build uses. The Dockerfile's own `FROM`s (its ARG defaults) when the engine
has them or a registry hands them over; where no registry answers, the stand-ins of
`standins.py`. "A registry answers" is decided per image, quickly: `docker image inspect` first
(an image pulled or loaded earlier counts), then one `docker pull` under a short deadline
(QUARTET_PULL_TIMEOUT_S, 20 s: an unreachable registry fails in well under a second when DNS has
no answer, but a firewall that drops packets would hang)."""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass
from typing import Literal

from cluster.image import engine, standins

DOCKERFILE = standins.ROOT / "Dockerfile"
COMPOSE_FILE = standins.ROOT / "docker-compose.yml"
PULL_TIMEOUT_S = float(os.environ.get("QUARTET_PULL_TIMEOUT_S", "20"))

Mode = Literal["auto", "registry", "local"]


@dataclass(frozen=True)
class Bases:
    python: str
    debian: str
    source: Literal["registry", "local"]


def dockerfile_default(arg: str) -> str:
    found = re.search(rf"^ARG {arg}=(\S+)$", DOCKERFILE.read_text(), flags=re.MULTILINE)
    if not found:
        raise ValueError(f"the Dockerfile has no default for {arg}")
    return found.group(1)


def compose_gateway_image() -> str:
    """The gateway image docker-compose.yml names (the one the stand-in replaces)."""
    found = re.search(
        r"^\s+image: (nginxinc/nginx-unprivileged:\S+)$", COMPOSE_FILE.read_text(), re.M
    )
    if not found:
        raise ValueError("docker-compose.yml names no nginx-unprivileged gateway image")
    return found.group(1)


def obtainable(ref: str) -> bool:
    """The engine has `ref`, or pulls it within PULL_TIMEOUT_S."""
    if engine.image_id(ref):
        return True
    try:
        pulled = engine.docker("pull", "--quiet", ref, check=False, timeout_s=PULL_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return False
    return pulled.returncode == 0


def choose(mode: Mode = "auto") -> Bases:
    real_python, real_debian = (
        dockerfile_default("PYTHON_IMAGE"),
        dockerfile_default("DEBIAN_IMAGE"),
    )
    if mode == "registry" or (
        mode == "auto" and obtainable(real_python) and obtainable(real_debian)
    ):
        return Bases(real_python, real_debian, "registry")
    return Bases(standins.python(), standins.debian(), "local")


def gateway(mode: Mode = "auto") -> str:
    """The compose gateway image where it can be had, else the nginx-light stand-in."""
    real = compose_gateway_image()
    if mode == "registry" or (mode == "auto" and obtainable(real)):
        return real
    return standins.gateway()
