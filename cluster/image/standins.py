"""Base images built here, for machines where no container registry answers: a Debian bookworm
made by debootstrap and imported into the engine, a Python on it (Debian's python3, 3.11.2, in
place of python:3.11.11-slim-bookworm) and a gateway (Debian's nginx-light 1.22 as uid 101, in
place of nginxinc/nginx-unprivileged 1.27). Each is tagged with a hash of its recipe, so it is
built once and rebuilt only when it is missing or its recipe changes."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import time
from pathlib import Path

from cluster.image import engine

ROOT = Path(__file__).resolve().parents[2]
CACHE = ROOT / ".cache" / "image"
SUITE = "bookworm"
MIRROR = os.environ.get("QUARTET_DEBIAN_MIRROR", "http://deb.debian.org/debian")
SECURITY_MIRROR = os.environ.get(
    "QUARTET_DEBIAN_SECURITY_MIRROR", "http://deb.debian.org/debian-security"
)
SOURCES = (
    f"deb {MIRROR} {SUITE} main\n"
    f"deb {MIRROR} {SUITE}-updates main\n"
    f"deb {SECURITY_MIRROR} {SUITE}-security main\n"
)

PYTHON_RECIPE = """\
FROM {base}
RUN apt-get update \\
    && apt-get install -y --no-install-recommends python3 python3-venv python-is-python3 \\
    && rm -rf /var/lib/apt/lists/*
CMD ["python3"]
"""

# The unprivileged nginx image's layout: uid/gid 101, logs to the container's stdio, temporary
# files under /var/cache/nginx (compose mounts a volume there; Debian's nginx is built with
# /var/lib/nginx, hence the link). wget is the compose healthcheck's client.
GATEWAY_RECIPE = """\
FROM {base}
RUN apt-get update \\
    && apt-get install -y --no-install-recommends nginx-light gettext-base wget \\
    && rm -rf /var/lib/apt/lists/* \\
    && groupadd --system --gid 101 nginx \\
    && useradd --system --uid 101 --gid 101 --home-dir /nonexistent --no-create-home \\
       --shell /usr/sbin/nologin nginx \\
    && mkdir -p /var/cache/nginx && chown 101:101 /var/cache/nginx \\
    && rm -rf /var/lib/nginx && ln -s /var/cache/nginx /var/lib/nginx \\
    && ln -sf /dev/stdout /var/log/nginx/access.log && ln -sf /dev/stderr /var/log/nginx/error.log
USER 101:101
EXPOSE 8080
STOPSIGNAL SIGQUIT
CMD ["nginx", "-g", "daemon off;"]
"""


def recipe_hash(*parts: str) -> str:
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:12]


def debian() -> str:
    """The local Debian base: `debootstrap --variant=minbase`, then `docker import`."""
    tag = f"quartet-base/debian:{SUITE}-minbase-{recipe_hash(SUITE, 'minbase', MIRROR, SOURCES)}"
    if engine.image_id(tag):
        return tag
    if os.geteuid() != 0:
        raise engine.EngineUnavailable(
            f"building the local base {tag} needs root (debootstrap); run `make image` as root"
        )
    if shutil.which("debootstrap") is None:
        raise engine.EngineUnavailable("debootstrap is missing (scripts/bootstrap.sh installs it)")
    rootfs = CACHE / f"rootfs-{SUITE}"
    done = rootfs / ".quartet-complete"
    started = time.monotonic()
    if not done.exists():
        shutil.rmtree(rootfs, ignore_errors=True)
        rootfs.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            ["debootstrap", "--variant=minbase", SUITE, str(rootfs), MIRROR],
            check=True,
            stdout=subprocess.DEVNULL,
            timeout=900,
        )
        (rootfs / "etc" / "apt" / "sources.list").write_text(SOURCES)
        for deb in (rootfs / "var" / "cache" / "apt" / "archives").glob("*.deb"):
            deb.unlink()
        shutil.rmtree(rootfs / "var" / "lib" / "apt" / "lists", ignore_errors=True)
        (rootfs / "var" / "lib" / "apt" / "lists" / "partial").mkdir(parents=True)
        done.touch()
    tar = subprocess.Popen(
        ["tar", "--numeric-owner", "--exclude=./.quartet-complete", "-C", str(rootfs), "-c", "."],
        stdout=subprocess.PIPE,
    )
    client = shutil.which("docker") or "docker"
    imported = subprocess.run(
        [client, "import", "--change", 'CMD ["bash"]', "-", tag],
        stdin=tar.stdout,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if tar.stdout is not None:
        tar.stdout.close()
    if tar.wait(timeout=60) != 0 or imported.returncode != 0:
        raise engine.DockerError(f"docker import {tag}: {imported.stderr}")
    print(f"  built {tag} from debootstrap in {time.monotonic() - started:.0f} s", flush=True)
    return tag


def _on_debian(name: str, recipe: str) -> str:
    base = debian()
    tag = f"quartet-base/{name}-{recipe_hash(base, recipe)}"
    if not engine.image_id(tag):
        started = time.monotonic()
        engine.build([tag], "-", dockerfile_text=recipe.format(base=base))
        print(f"  built {tag} in {time.monotonic() - started:.0f} s", flush=True)
    return tag


def python() -> str:
    """Debian's python3 (3.11.2) with venv and a `python` command, as the slim image has."""
    return _on_debian(f"python:3.11-{SUITE}", PYTHON_RECIPE)


def gateway() -> str:
    """Debian's nginx-light (1.22) and envsubst, as uid 101."""
    return _on_debian(f"nginx-gateway:1.22-{SUITE}", GATEWAY_RECIPE)
