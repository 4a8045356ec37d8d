"""Which tests need real things, so that `pytest -m "not cluster"` runs the pure tests alone.

A test is a `cluster` test when its fixture closure includes one of REAL_FIXTURES (the marker is
then applied at collection, see tests/conftest.py) or when its module says `pytestmark =
pytest.mark.cluster` (tests that start their own servers in the body or in a local fixture). A
test that is not marked and still starts one of SERVER_PROGRAMS fails at once, naming the marker:
the pure selection cannot silently grow a test that needs a server.
"""

from __future__ import annotations

import os
import shlex
import subprocess
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import Any

MARKER = "cluster"

Guard = AbstractContextManager[None]

# Fixtures that start or reach real servers; anything depending on them is marked through its
# fixture closure (start_counter, start_service, page_on ... all depend on `cluster`). Beside the
# shared ones: deploy's `image` (docker build), counter's `three_shards` and the chaos run's own
# cluster. A module-local fixture may be listed here or its tests marked; the guard below tells.
REAL_FIXTURES = frozenset(
    {"cluster", "scratch_redis", "scratch_shards", "image", "three_shards", "chaos_cluster"}
)

# Programs that are, or drive, a real server, container or load generator.
SERVER_PROGRAMS = frozenset(
    {
        "redis-server",
        "redis-cli",
        "mariadbd",
        "mysqld",
        "mariadb",
        "mysql",
        "nginx",
        "docker",
        "wrk",
        "gunicorn",
        "uvicorn",
        "locust",
        "prometheus",
        "mtail",
        "supervisord",
        "supervisorctl",
        "kubectl",
        "chromium",
        "firefox",
    }
)
# `python -m <module>` forms of the same.
SERVER_MODULES = frozenset({"cluster", "gunicorn", "uvicorn", "locust"})


def _argv(args: object) -> list[str]:
    if isinstance(args, str):
        return shlex.split(args)
    if isinstance(args, bytes | os.PathLike):
        return [os.fsdecode(args)]
    if isinstance(args, Sequence):
        return [os.fsdecode(a) if isinstance(a, bytes | os.PathLike) else str(a) for a in args]
    return []


def server_started(args: object) -> str | None:
    """The server program an argv starts, if it starts one."""
    argv = _argv(args)
    if not argv:
        return None
    program = os.path.basename(argv[0])
    if program in SERVER_PROGRAMS:
        return program
    if program.startswith("python") and "-m" in argv[1:-1]:
        module = argv[argv.index("-m") + 1]
        if module in SERVER_MODULES:
            return f"python -m {module}"
    return None


@contextmanager
def no_servers(test_id: str) -> Iterator[None]:
    """While a pure test runs, refuse to start a server (subprocess.run, Popen and asyncio's
    subprocesses all go through subprocess.Popen)."""
    original = subprocess.Popen

    class Guarded(original):  # type: ignore[valid-type,misc]
        def __init__(self, args: Any, *rest: Any, **kwargs: Any) -> None:
            program = server_started(args)
            if program is not None:
                raise AssertionError(
                    f"{test_id} starts {program} but is not marked `{MARKER}`: add "
                    f"`pytestmark = pytest.mark.{MARKER}` to its module (or depend on one of "
                    f"{sorted(REAL_FIXTURES)}), so that -m 'not {MARKER}' stays pure"
                )
            super().__init__(args, *rest, **kwargs)

    subprocess.Popen = Guarded  # type: ignore[misc]
    try:
        yield
    finally:
        subprocess.Popen = original  # type: ignore[misc]
