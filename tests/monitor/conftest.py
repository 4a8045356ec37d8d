from __future__ import annotations

import pytest

from tests.monitor import expected
from tests.support.cluster import RunningCluster


@pytest.fixture(scope="session")
def watched_cluster(cluster: RunningCluster) -> RunningCluster:
    """The test cluster after some of every kind of traffic, once Prometheus has it all."""
    expected.wait_until_prometheus_has_seen_traffic(cluster)
    return cluster
