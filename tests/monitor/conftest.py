from __future__ import annotations

import socket

import pytest

from tests.monitor import expected
from tests.support.cluster import RunningCluster


@pytest.fixture(scope="session")
def watched_cluster(cluster: RunningCluster) -> RunningCluster:
    """The test cluster after some of every kind of traffic, once Prometheus has it all."""
    expected.wait_until_prometheus_has_seen_traffic(cluster)
    return cluster


@pytest.fixture
def no_prometheus() -> str:
    """A loopback URL where nothing listens (a port the kernel just handed out, closed again)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"
