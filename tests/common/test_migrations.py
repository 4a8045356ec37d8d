"""Migrations against the cluster's real MariaDB."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import aiomysql
import pytest

from services.common import migrations
from services.common.mysql import create_pool
from tests.support.cluster import RunningCluster


@pytest.fixture
async def pool(cluster: RunningCluster) -> AsyncIterator[aiomysql.Pool]:
    created = await create_pool(cluster.mysql_dsn, size=4)
    yield created
    created.close()
    await created.wait_closed()


def _write(directory: Path, table: str) -> None:
    directory.mkdir(exist_ok=True)
    (directory / "001_items.sql").write_text(
        f"CREATE TABLE IF NOT EXISTS {table} (id INT PRIMARY KEY) ENGINE=InnoDB;\n"
    )
    (directory / "002_names.sql").write_text(
        f"CREATE TABLE IF NOT EXISTS {table}_names (id INT PRIMARY KEY, name TEXT) ENGINE=InnoDB;\n"
        f"INSERT IGNORE INTO {table} (id) VALUES (1);\n"
    )


async def test_applied_once_in_order_and_recorded(pool: aiomysql.Pool, tmp_path: Path) -> None:
    service = f"mig_{uuid.uuid4().hex[:8]}"
    _write(tmp_path, service)
    found = migrations.load_migrations(tmp_path)
    assert [m.version for m in found] == [1, 2]
    assert await migrations.apply(pool, service, found) == ["001_items", "002_names"]
    assert await migrations.apply(pool, service, found) == []
    async with pool.acquire() as conn, conn.cursor() as cur:
        await cur.execute(
            "SELECT version, checksum FROM schema_migrations WHERE service = %s ORDER BY version",
            (service,),
        )
        rows = await cur.fetchall()
        await cur.execute(f"SELECT COUNT(*) FROM {service}")
        (items,) = await cur.fetchone()
    assert [(v, c) for v, c in rows] == [(1, found[0].checksum), (2, found[1].checksum)]
    assert items == 1


async def test_workers_starting_together_apply_each_migration_once(
    pool: aiomysql.Pool, tmp_path: Path
) -> None:
    service = f"mig_{uuid.uuid4().hex[:8]}"
    _write(tmp_path, service)
    found = migrations.load_migrations(tmp_path)
    results = await asyncio.gather(*(migrations.apply(pool, service, found) for _ in range(4)))
    assert sorted(name for applied in results for name in applied) == ["001_items", "002_names"]


async def test_an_edited_migration_is_refused(pool: aiomysql.Pool, tmp_path: Path) -> None:
    service = f"mig_{uuid.uuid4().hex[:8]}"
    _write(tmp_path, service)
    await migrations.apply(pool, service, migrations.load_migrations(tmp_path))
    (tmp_path / "001_items.sql").write_text("CREATE TABLE IF NOT EXISTS other (id INT);\n")
    with pytest.raises(migrations.MigrationError, match="changed after it was applied"):
        await migrations.apply(pool, service, migrations.load_migrations(tmp_path))


def test_badly_named_files_are_refused(tmp_path: Path) -> None:
    (tmp_path / "items.sql").write_text("SELECT 1;\n")
    with pytest.raises(migrations.MigrationError, match=r"NNN_name\.sql"):
        migrations.load_migrations(tmp_path)


def test_the_command_applies_a_services_migrations(cluster: RunningCluster) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "services.common.migrations", "counter", "--dsn", cluster.mysql_dsn],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    # The cluster applied them at start: nothing is left to do, and saying so is the contract.
    assert result.stdout.strip() == "counter: 0 applied"
