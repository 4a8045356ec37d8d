from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import cluster as test_cluster
from tests.support.processes import redis_server


@pytest.fixture(scope="session")
def cluster() -> Iterator[test_cluster.RunningCluster]:
    """The whole local cluster (redis shards, MariaDB, nginx, counter x2), started once."""
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
