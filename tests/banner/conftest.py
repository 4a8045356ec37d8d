from __future__ import annotations

import pytest

from tests.support import datasets
from tests.support.cluster import RunningCluster


@pytest.fixture(params=["generated", "datachef"])
def dataset(request: pytest.FixtureRequest, cluster: RunningCluster) -> datasets.Dataset:
    """Each banner dataset the test cluster serves: the generated one always, DataChef's when
    QUARTET_DATACHEF_DIR (or ../shared/datasets/banners) has it, else that case is skipped."""
    if request.param == "generated":
        return cluster.generated_banners
    return datasets.datachef()


@pytest.fixture
def datachef_dataset(cluster: RunningCluster) -> datasets.Dataset:
    """DataChef's dataset, served by the cluster; the test is skipped when it is absent."""
    return datasets.datachef()
