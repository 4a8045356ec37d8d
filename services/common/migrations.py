"""Versioned SQL migrations: `NNN_name.sql` files applied in order, once, recorded in a table.

Run at service start (MIGRATE_ON_START) and by hand or by a deploy Job:

    python -m services.common.migrations counter

Every statement must be idempotent (CREATE TABLE IF NOT EXISTS, ...): MySQL commits DDL
implicitly, so a migration interrupted half-way is simply applied again. A named lock serialises
the workers and replicas that start at the same moment. An applied file whose text changed is an
error: published migrations are immutable, a change is a new file.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import logging
import re
import sys
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import aiomysql

from services.common.dsn_arg import add_dsn_argument, dsn_of
from services.common.mysql import create_pool

log = logging.getLogger(__name__)
_FILE = re.compile(r"^(\d{3,})_([a-z0-9_]+)\.sql$")
_LOCK_TIMEOUT_S = 60

SCHEMA_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    service    VARCHAR(64)  NOT NULL,
    version    INT          NOT NULL,
    name       VARCHAR(255) NOT NULL,
    checksum   CHAR(64)     NOT NULL,
    applied_at DATETIME(6)  NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    PRIMARY KEY (service, version)
) ENGINE=InnoDB
"""


class MigrationError(RuntimeError):
    pass


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()

    def statements(self) -> list[str]:
        # Statements end with a semicolon at the end of a line; the files contain no procedures.
        return [s.strip() for s in re.split(r";\s*$", self.sql, flags=re.M) if s.strip()]


def load_migrations(directory: Path) -> list[Migration]:
    found: list[Migration] = []
    for path in sorted(directory.glob("*.sql")):
        match = _FILE.match(path.name)
        if not match:
            raise MigrationError(f"{path.name}: migration files are named NNN_name.sql")
        found.append(Migration(int(match[1]), path.stem, path.read_text()))
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise MigrationError(f"duplicate migration versions in {directory}")
    return found


def service_migrations(service: str) -> list[Migration]:
    directory = Path(str(resources.files(f"services.{service}"))) / "migrations"
    return load_migrations(directory) if directory.is_dir() else []


async def apply(pool: aiomysql.Pool, service: str, migrations: list[Migration]) -> list[str]:
    """Apply what is not applied yet; returns the names applied now."""
    applied_now: list[str] = []
    async with pool.acquire() as conn, conn.cursor() as cur:
        await cur.execute(
            "SELECT COUNT(*) FROM information_schema.tables"
            " WHERE table_schema = DATABASE() AND table_name = 'schema_migrations'"
        )
        (exists,) = await cur.fetchone()
        if not exists:  # checked first: IF NOT EXISTS alone would warn on every start
            await cur.execute(SCHEMA_TABLE)
        lock = f"quartet_migrations_{service}"
        await cur.execute("SELECT GET_LOCK(%s, %s)", (lock, _LOCK_TIMEOUT_S))
        (got,) = await cur.fetchone()
        if got != 1:
            raise MigrationError(f"could not take the migration lock {lock!r}")
        try:
            await cur.execute(
                "SELECT version, checksum FROM schema_migrations WHERE service = %s", (service,)
            )
            done = {int(v): c for v, c in await cur.fetchall()}
            for migration in migrations:
                if migration.version in done:
                    if done[migration.version] != migration.checksum:
                        raise MigrationError(
                            f"{service}/{migration.name} changed after it was applied"
                        )
                    continue
                for statement in migration.statements():
                    await cur.execute(statement)
                await cur.execute(
                    "INSERT INTO schema_migrations (service, version, name, checksum)"
                    " VALUES (%s, %s, %s, %s)",
                    (service, migration.version, migration.name, migration.checksum),
                )
                applied_now.append(migration.name)
                log.info("migration applied", extra={"migration": f"{service}/{migration.name}"})
        finally:
            await cur.execute("SELECT RELEASE_LOCK(%s)", (lock,))
    return applied_now


async def run(services: list[str], dsn: str) -> None:
    pool = await create_pool(dsn, size=1)
    try:
        for service in services:
            names = await apply(pool, service, service_migrations(service))
            print(f"{service}: {len(names)} applied" + (f" ({', '.join(names)})" if names else ""))
    finally:
        pool.close()
        await pool.wait_closed()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("services", nargs="+", help="service packages, e.g. counter")
    add_dsn_argument(parser)
    args = parser.parse_args()
    dsn = dsn_of(args)
    try:
        asyncio.run(run(args.services, dsn))
    except MigrationError as exc:
        sys.exit(f"migration failed: {exc}")


if __name__ == "__main__":
    main()
