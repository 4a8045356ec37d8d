"""The aiomysql pool, built from `MYSQL_DSN` (mysql://user:password@host:port/database)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from urllib.parse import parse_qs, unquote, urlsplit

import aiomysql
import pymysql

from services.common import tracing


@dataclass(frozen=True)
class MysqlTarget:
    host: str
    port: int
    user: str
    password: str
    database: str
    unix_socket: str | None = None

    @classmethod
    def from_dsn(cls, dsn: str) -> MysqlTarget:
        # Never a fragment of the DSN in the message: it holds a password, and a password with a
        # '/' or '#' cut by the URL parser would surface as the "port" in its own error.
        malformed = ValueError(
            "MYSQL_DSN must look like mysql://user:password@host:port/database (its value is not"
            " shown; percent-encode '/', '@', ':', '#' and '?' in the password)"
        )
        try:
            parts = urlsplit(dsn)
            port = parts.port
        except ValueError:
            raise malformed from None
        if parts.scheme != "mysql" or not parts.path.strip("/"):
            raise malformed
        socket = parse_qs(parts.query).get("unix_socket", [None])[0]
        return cls(
            host=parts.hostname or "127.0.0.1",
            port=port or 3306,
            user=unquote(parts.username or "root"),
            password=unquote(parts.password or ""),
            database=parts.path.strip("/"),
            unix_socket=socket,
        )


def connect_blocking(dsn: str, *, timeout_s: float = 2.0) -> pymysql.Connection:
    """A plain blocking connection, for command-line tools and tests."""
    target = MysqlTarget.from_dsn(dsn)
    return pymysql.connect(
        host=target.host,
        port=target.port,
        user=target.user,
        password=target.password,
        database=target.database,
        unix_socket=target.unix_socket,
        connect_timeout=timeout_s,
    )


async def create_pool(dsn: str, *, size: int, connect_timeout_s: float = 2.0) -> aiomysql.Pool:
    target = MysqlTarget.from_dsn(dsn)
    # Traced, every statement is a span (services/common/tracing.py); off, aiomysql's own cursor.
    traced = tracing.mysql_cursor_class()
    extra = {"cursorclass": traced} if traced is not None else {}
    return await aiomysql.create_pool(
        host=target.host,
        port=target.port,
        user=target.user,
        password=target.password,
        db=target.database,
        unix_socket=target.unix_socket,
        minsize=1,
        maxsize=size,
        autocommit=True,
        connect_timeout=connect_timeout_s,
        # A server restart leaves dead sockets in the pool; recycling bounds how long they linger.
        pool_recycle=300,
        charset="utf8mb4",
        **extra,
    )


async def ping(pool: aiomysql.Pool, timeout_s: float) -> None:
    async with asyncio.timeout(timeout_s), pool.acquire() as conn, conn.cursor() as cur:
        await cur.execute("SELECT 1")
        await cur.fetchone()
