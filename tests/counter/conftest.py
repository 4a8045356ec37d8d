from __future__ import annotations

import itertools
import uuid
from collections.abc import Callable

import pytest

from services.common.mysql import connect_blocking
from services.common.ring import ShardRing
from tests.support.cluster import RunningCluster

PageOn = Callable[[str], str]


@pytest.fixture
def page_on(cluster: RunningCluster) -> PageOn:
    """A fresh page id owned by the named shard."""
    ring = ShardRing(cluster.topo.shard_names)

    def pick(shard: str) -> str:
        run = uuid.uuid4().hex[:8]
        return next(
            page
            for page in (f"p-{run}-{i}" for i in itertools.count())
            if ring.shard_for(page) == shard
        )

    return pick


def ledger_total(cluster: RunningCluster, page_id: str) -> int:
    conn = connect_blocking(cluster.mysql_dsn)
    try:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT COALESCE(SUM(visits), 0) FROM page_visits_daily WHERE page_id = %s",
                (page_id,),
            )
            row = cur.fetchone()
            return int(row[0]) if row else 0
    finally:
        conn.close()
