"""Faults at an exact point of a claim, in the test's own process, against the real servers.

Every Redis command and every MySQL statement, BEGIN and COMMIT the claim's task sends is a step;
the step runs on the server for real, and then, after the n-th one:

- "lost": its reply is lost. The MySQL connection is dropped (the server rolls back what was not
  committed), a Redis command raises ConnectionError; the claim sees the error a real lost reply
  gives, and handles it as it would.
- "killed": the process dies. The MySQL connections the claim holds are dropped (those back in the
  pool are idle: dropping them changes nothing on the server) and `Killed`, which no
  `except Exception` catches, unwinds the claim: nothing after the step runs, what the servers
  already did stays done. What a SIGKILL between two steps leaves, exactly there.

Only the claim's (or mint's) own task counts, and a task it names after itself and awaits (the
mint's pipelined INSERTs), so a fire-and-forget write it leaves behind is not a step.
Real SIGKILLs and SIGSTOPs, which cannot aim at a step, are in test_gift_code_faults.py too.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import aiomysql
import pytest
from pymysql.err import OperationalError
from redis.asyncio.client import Redis
from redis.exceptions import ConnectionError as RedisConnectionError


class Killed(BaseException):
    """The process died after a step: not an Exception, so no handler of the claim runs."""


class StepFaults:
    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.steps: list[str] = []
        self._task: asyncio.Task[Any] | None = None
        self._at: int | None = None
        self._kind = ""
        self._connections: list[aiomysql.Connection] = []
        self.fired: str | None = None
        faults = self
        execute = aiomysql.Cursor.execute
        begin = aiomysql.Connection.begin
        commit = aiomysql.Connection.commit
        command = Redis.execute_command
        release = aiomysql.Pool.release

        def pool_release(pool: aiomysql.Pool, conn: aiomysql.Connection) -> Any:
            # Back in the pool, a connection is idle: a death drops it with no effect on MySQL.
            if conn in faults._connections:
                faults._connections.remove(conn)
            return release(pool, conn)

        async def cursor_execute(
            cur: aiomysql.Cursor, query: str | bytes | bytearray, args: Any = None
        ) -> Any:
            result = await execute(cur, query, args)
            text = query.decode() if isinstance(query, bytes | bytearray) else query  # executemany
            faults._after(f"mysql {text.split()[0]}", cur.connection)
            return result

        async def conn_begin(conn: aiomysql.Connection) -> None:
            await begin(conn)
            faults._after("mysql BEGIN", conn)

        async def conn_commit(conn: aiomysql.Connection) -> None:
            await commit(conn)
            faults._after("mysql COMMIT", conn)

        async def execute_command(client: Redis, *args: Any, **options: Any) -> Any:
            result = await command(client, *args, **options)  # type: ignore[no-untyped-call]
            faults._after(f"redis {args[0]}", None)
            return result

        monkeypatch.setattr(aiomysql.Cursor, "execute", cursor_execute)
        monkeypatch.setattr(aiomysql.Connection, "begin", conn_begin)
        monkeypatch.setattr(aiomysql.Connection, "commit", conn_commit)
        monkeypatch.setattr(Redis, "execute_command", execute_command)
        monkeypatch.setattr(aiomysql.Pool, "release", pool_release)

    @contextmanager
    def armed(self, at: int | None = None, kind: str = "lost") -> Iterator[None]:
        """Count the current task's steps; with `at`, fault after that step (1-based)."""
        self.steps, self.fired, self._connections = [], None, []
        self._task, self._at, self._kind = asyncio.current_task(), at, kind
        try:
            yield
        finally:
            self._task = None

    def _after(self, step: str, conn: aiomysql.Connection | None) -> None:
        current = asyncio.current_task()
        if self._task is None or current is None:
            return
        # The armed task's own steps, and those of a task it runs them in and awaits (named
        # `<its name>/...`: the mint's pipelined INSERTs); not a fire-and-forget write's.
        if current is not self._task and not current.get_name().startswith(
            f"{self._task.get_name()}/"
        ):
            return
        self.steps.append(step)
        if conn is not None and conn not in self._connections:
            self._connections.append(conn)
        if len(self.steps) != self._at:
            return
        self.fired = step
        self._task = None  # one fault per armed block
        if self._kind == "killed":
            for used in self._connections:
                used.close()
            raise Killed(step)
        if conn is not None:
            conn.close()
            raise OperationalError(2013, "Lost connection to MySQL server during query")
        raise RedisConnectionError("the reply was lost")
