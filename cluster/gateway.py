"""The local cluster's gateway: the repository's nginx/ copied under the state directory and its
templates filled in by nginx/render.sh, the same renderer the containers run (one renderer, so
local and container gateways cannot drift). This module only supplies the values: the listeners
on offset ports, the limits from ClusterSettings, and each upstream's `server` lines from the
topology (the instances of every service in services/common/description.py)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from cluster.topology import ROOT, Topology, which
from services.common import description

RENDERER = ROOT / "nginx" / "render.sh"


def values(topo: Topology) -> dict[str, str]:
    """What render.sh reads from its environment."""
    settings = topo.settings
    filled = {
        "GATEWAY_LISTEN": f"127.0.0.1:{topo.gateway_port}",
        "INTERNAL_LISTEN": f"127.0.0.1:{topo.internal_port}",
        "METRICS_LOG": "logs/metrics.log",
        "GATEWAY_RATE": settings.GATEWAY_RATE,
        "GATEWAY_BURST": str(settings.GATEWAY_BURST),
        "GATEWAY_CLAIM_RATE": settings.GATEWAY_CLAIM_RATE,
        "GATEWAY_CLAIM_BURST": str(settings.GATEWAY_CLAIM_BURST),
        "GATEWAY_PUBLIC_ADMIN": "true" if settings.GATEWAY_PUBLIC_ADMIN else "false",
        "GATEWAY_CONN": str(settings.GATEWAY_CONN),
        "TRUSTED_PROXIES": settings.TRUSTED_PROXIES,
    }
    for spec in description.SERVICES:
        filled[spec.servers_var] = "\n    ".join(
            f"server 127.0.0.1:{i.port} max_conns={spec.gateway_conns} max_fails=3 fail_timeout=5s;"
            for i in topo.instances_of(spec.name)
        )
    return filled


def render(prefix: Path, env: dict[str, str]) -> None:
    """Run render.sh over `prefix` with only `env` (and PATH): nothing leaks in from the caller."""
    which("envsubst")  # gettext-base; a clear message rather than render.sh's "not found"
    result = subprocess.run(
        ["sh", "-ec", '. "$0"; render_templates "$1"', str(RENDERER), str(prefix)],
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **env},
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise SystemExit(f"nginx/render.sh failed:\n{result.stdout}{result.stderr}")


def render_nginx(topo: Topology) -> Path:
    target = topo.state / "nginx"
    if target.exists():
        # Keep only runtime state (temp dirs); configuration is rewritten from the repository.
        for child in target.iterdir():
            if child.name not in {"tmp", "logs"}:
                shutil.rmtree(child) if child.is_dir() else child.unlink()
    shutil.copytree(ROOT / "nginx", target, dirs_exist_ok=True)
    (target / "tmp").mkdir(exist_ok=True)
    (target / "logs").mkdir(exist_ok=True)
    (target / "logs" / "metrics.log").touch()  # mtail follows it from the start
    render(target, values(topo))
    return target
