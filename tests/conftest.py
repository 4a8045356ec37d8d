from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Generator, Iterator
from contextlib import nullcontext
from pathlib import Path

import pytest

from tests.support import cluster as test_cluster
from tests.support import real_dependencies
from tests.support.processes import redis_server


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test whose fixtures start real servers, so that -m "not cluster" is pure."""
    for item in items:
        if set(getattr(item, "fixturenames", ())) & real_dependencies.REAL_FIXTURES:
            item.add_marker(real_dependencies.MARKER)


def _guard(item: pytest.Item) -> real_dependencies.Guard:
    """A test not marked `cluster` may not start a server (real_dependencies.no_servers)."""
    if item.get_closest_marker(real_dependencies.MARKER) is not None:
        return nullcontext()
    return real_dependencies.no_servers(item.nodeid)


# Setup and call only: a session fixture's teardown (the cluster's `down`) runs in whichever test
# happens to be the last to use it, and the test after it may be pure.
@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Generator[None, None, None]:
    with _guard(item):
        return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, None, None]:
    with _guard(item):
        return (yield)


@pytest.fixture(scope="session")
def cluster() -> Iterator[test_cluster.RunningCluster]:
    """The whole local cluster (redis shards, MariaDB, nginx, every service), started once."""
    state = Path(tempfile.mkdtemp(prefix="quartet-test-"))
    running = test_cluster.start(state)
    try:
        yield running
    finally:
        running.cli("down", check=False)
        if os.environ.get("QUARTET_KEEP_TEST_STATE"):
            print(f"test cluster state kept in {state}")
        else:
            shutil.rmtree(state, ignore_errors=True)


@pytest.fixture
def scratch_redis(tmp_path: Path) -> Iterator[int]:
    """A redis-server of the test's own, on a free port."""
    with redis_server(tmp_path / "redis") as port:
        yield port
