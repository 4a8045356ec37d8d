"""The runtime wheels for a build that cannot reach PyPI: `pip download` on the host, for the
container's interpreter (CPython 3.11, manylinux x86_64), from pyproject.toml's runtime
dependencies at requirements.lock's versions. The image installs them with --no-index.

The host's pip evaluates environment markers for the host's Python, so a pin the container's
Python needs and the host's does not (async-timeout, which redis requires below 3.11.3: Debian's
python3 is 3.11.2) is added explicitly: every lock line whose marker holds for the container and
not for the host."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

from packaging.requirements import Requirement

from cluster.image import standins

PYPROJECT = standins.ROOT / "pyproject.toml"
LOCK = standins.ROOT / "requirements.lock"
# Debian bookworm has glibc 2.36: every manylinux tag up to it installs there.
PLATFORMS = ["manylinux2014_x86_64", *(f"manylinux_2_{n}_x86_64" for n in range(17, 37))]


def runtime_requirements() -> list[str]:
    deps: list[str] = tomllib.loads(PYPROJECT.read_text())["project"]["dependencies"]
    return deps


def container_only_pins(container_python: str) -> list[str]:
    """Lock lines without effect on the host that the container's Python needs."""
    container = {
        "python_full_version": container_python,
        "python_version": ".".join(container_python.split(".")[:2]),
    }
    pins = []
    for line in LOCK.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        req = Requirement(line)
        if req.marker and req.marker.evaluate(container) and not req.marker.evaluate():
            pins.append(f"{req.name}{req.specifier}")
    return pins


def fill(directory: Path, container_python: str) -> str:
    """Downloads the wheels into `directory` (once per lock and Python: a stamp remembers) and
    returns a hash of what it holds."""
    extra = container_only_pins(container_python)
    wanted = hashlib.sha256(
        "\n".join([LOCK.read_text(), *runtime_requirements(), *extra, container_python]).encode()
    ).hexdigest()[:12]
    stamp = directory / ".quartet-stamp"
    if stamp.is_file() and stamp.read_text() == wanted:
        return wanted
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    runtime = directory / "runtime.txt"
    runtime.write_text("\n".join([*runtime_requirements(), *extra]) + "\n")
    command = [sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check"]
    command += ["--dest", str(directory), "--only-binary=:all:", "--implementation", "cp"]
    command += ["--python-version", container_python, "--abi", "cp311"]
    for platform in PLATFORMS:
        command += ["--platform", platform]
    command += ["-r", str(runtime), "-c", str(LOCK)]
    # The host's pip configuration may add index warnings; they are shown only on a failure.
    done = subprocess.run(command, capture_output=True, text=True, timeout=900, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"pip download failed:\n{done.stdout}{done.stderr}")
    runtime.unlink()
    stamp.write_text(wanted)
    return wanted
