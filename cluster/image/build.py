"""The service image and the mtail image, built from the repository's Dockerfile and tagged
`<name>:local` (what compose and k8s/overlays/dev run) and `<name>:src-<hash>`, the hash covering
every input: the Dockerfile, .dockerignore, pyproject.toml, requirements.lock, services/, the base
images' ids and, offline, the wheelhouse. An image whose hash tag exists is reused, not rebuilt."""

from __future__ import annotations

import hashlib
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from cluster.image import bases, engine, standins, wheelhouse

ROOT = standins.ROOT
SERVICE_IMAGE = "quartet"
MTAIL_IMAGE = "quartet-mtail"
WHEELHOUSE = standins.CACHE / "wheelhouse"
CONTEXT = standins.CACHE / "context"
# In the build context, as .dockerignore lets it in; the Dockerfile's glob copies it if present.
CONTEXT_WHEELHOUSE = "wheelhouse"
IN_IMAGE_WHEELHOUSE = "/build/wheelhouse"


@dataclass(frozen=True)
class Built:
    name: str
    tags: tuple[str, ...]
    image_id: str
    size_bytes: int
    base: str
    reused: bool
    seconds: float


@dataclass(frozen=True)
class Report:
    bases: bases.Bases
    dependencies: str  # "PyPI" or "wheelhouse (N wheels)"
    images: tuple[Built, ...]

    @property
    def service(self) -> Built:
        return next(i for i in self.images if i.name == SERVICE_IMAGE)

    def lines(self) -> list[str]:
        where = (
            "the Dockerfile's own FROM (a registry answered)"
            if self.bases.source == "registry"
            else "local stand-ins (no registry answered): debootstrap'd Debian bookworm, "
            "Debian's python3 3.11.2"
        )
        lines = [
            f"bases: {where}",
            f"  python: {self.bases.python}",
            f"  debian: {self.bases.debian}",
        ]
        lines.append(f"dependencies: {self.dependencies}")
        for image in self.images:
            how = "reused (inputs unchanged)" if image.reused else f"built in {image.seconds:.0f} s"
            lines.append(
                f"{image.name}: {', '.join(image.tags)}  id {image.image_id[7:19]}  "
                f"{image.size_bytes / 1e6:.0f} MB  from {image.base}  {how}"
            )
        return lines


def _source_files() -> list[Path]:
    """What the build context holds (the .dockerignore allow-list), in a stable order."""
    files = [
        ROOT / "Dockerfile",
        ROOT / ".dockerignore",
        ROOT / "pyproject.toml",
        ROOT / "requirements.lock",
    ]
    for path in sorted((ROOT / "services").rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
            files.append(path)
    return files


def inputs_hash(*extra: str) -> str:
    digest = hashlib.sha256()
    for path in _source_files():
        digest.update(str(path.relative_to(ROOT)).encode() + b"\0" + path.read_bytes() + b"\0")
    for part in extra:
        digest.update(part.encode() + b"\0")
    return digest.hexdigest()[:12]


def _stage_context(wheels: Path) -> Path:
    """A build context of the files .dockerignore lets in, plus the wheelhouse (hard links)."""
    shutil.rmtree(CONTEXT, ignore_errors=True)
    CONTEXT.mkdir(parents=True)
    for name in (".dockerignore", "pyproject.toml", "requirements.lock"):
        shutil.copy2(ROOT / name, CONTEXT / name)
    shutil.copytree(
        ROOT / "services",
        CONTEXT / "services",
        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
    )
    (CONTEXT / CONTEXT_WHEELHOUSE).mkdir()
    for wheel in wheels.glob("*.whl"):
        os.link(wheel, CONTEXT / CONTEXT_WHEELHOUSE / wheel.name)
    return CONTEXT


def _container_python(image: str) -> str:
    script = "import platform; print(platform.python_version())"
    return engine.docker(
        "run", "--rm", "--entrypoint", "python3", image, "-c", script
    ).stdout.strip()


def _drop_old_hash_tags(name: str, keep: str) -> None:
    listed = engine.docker("images", name, "--format", "{{.Tag}}").stdout.split()
    for tag in listed:
        if tag.startswith("src-") and f"{name}:{tag}" != keep:
            engine.docker("rmi", f"{name}:{tag}", check=False)


def _build_one(
    name: str, target: str, digest: str, base: str, context: str, build_args: dict[str, str]
) -> Built:
    hash_tag, local_tag = f"{name}:src-{digest}", f"{name}:local"
    started = time.monotonic()
    reused = engine.image_id(hash_tag) is not None
    if reused:
        engine.docker("tag", hash_tag, local_tag)
    else:
        engine.build(
            [hash_tag, local_tag],
            context,
            dockerfile=str(ROOT / "Dockerfile"),
            target=target,
            build_args=build_args,
        )
        _drop_old_hash_tags(name, hash_tag)
    found = engine.inspect_image(hash_tag)
    assert found is not None
    return Built(
        name,
        (local_tag, hash_tag),
        str(found["Id"]),
        int(found["Size"]),
        base,
        reused,
        time.monotonic() - started,
    )


def build_images(mode: bases.Mode = "auto", use_wheelhouse: bool | None = None) -> Report:
    """Builds (or reuses) the service image and the mtail image; see the module's docstring."""
    engine.require_engine()
    chosen = bases.choose(mode)
    if use_wheelhouse is None:
        use_wheelhouse = chosen.source == "local"
    build_args = {"PYTHON_IMAGE": chosen.python, "DEBIAN_IMAGE": chosen.debian}
    extra = [
        chosen.python,
        str(engine.image_id(chosen.python)),
        chosen.debian,
        str(engine.image_id(chosen.debian)),
    ]
    if use_wheelhouse:
        extra.append("wheelhouse " + wheelhouse.fill(WHEELHOUSE, _container_python(chosen.python)))
        context = str(_stage_context(WHEELHOUSE))
        build_args["PIP_INSTALL_FLAGS"] = f"--no-index --find-links={IN_IMAGE_WHEELHOUSE}"
        dependencies = f"wheelhouse ({len(list(WHEELHOUSE.glob('*.whl')))} wheels, pip --no-index)"
    else:
        context = str(ROOT)
        dependencies = "PyPI"
    service = _build_one(
        SERVICE_IMAGE, "service", inputs_hash(*extra), chosen.python, context, build_args
    )
    # The classic builder builds every stage before the target, so this one mostly reuses the
    # layers the service build just made; its own content depends on the Dockerfile and the base.
    mtail_hash = inputs_hash(chosen.debian, str(engine.image_id(chosen.debian)), *extra)
    mtail = _build_one(MTAIL_IMAGE, "mtail", mtail_hash, chosen.debian, context, build_args)
    return Report(chosen, dependencies, (service, mtail))
