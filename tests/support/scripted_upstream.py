"""A real HTTP "work" server whose every answer the test scripts: delay and outcome per call."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from aiohttp import web

from tests.support.processes import free_port

# ok: 200 {"time": delay} | 500 | 429 | invalid: 200, not JSON | shape: 200, wrong JSON | hang
Step = tuple[int, str]


@dataclass
class ScriptedUpstream:
    url: str = ""
    script: deque[Step] = field(default_factory=deque)
    default: Step = (20, "ok")
    starts: list[float] = field(default_factory=list)
    active: int = 0
    server: web.Server | None = None
    # Set at cleanup: a hung handler then ends at once instead of holding the shutdown.
    released: asyncio.Event = field(default_factory=asyncio.Event)

    def plan(self, *steps: Step) -> None:
        self.script.extend(steps)

    def reset(self) -> None:
        self.script.clear()
        self.starts.clear()

    @property
    def open_connections(self) -> int:
        """Connections whose socket is still open (a hung handler outlives its closed socket)."""
        if self.server is None:
            return 0
        return sum(
            1
            for protocol in self.server.connections
            if protocol.transport is not None and not protocol.transport.is_closing()
        )

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.starts.append(asyncio.get_running_loop().time())
        delay, outcome = self.script.popleft() if self.script else self.default
        self.active += 1
        try:
            if outcome == "hang":
                await self.released.wait()
            await asyncio.sleep(delay / 1000)
        finally:
            self.active -= 1
        if outcome == "ok":
            return web.json_response({"time": delay})
        if outcome in {"500", "429"}:
            return web.json_response({"error": outcome}, status=int(outcome))
        if outcome == "invalid":
            return web.Response(text="{time: nope", content_type="application/json")
        return web.json_response({"t": delay})  # "shape"


@asynccontextmanager
async def scripted_upstream() -> AsyncIterator[ScriptedUpstream]:
    upstream = ScriptedUpstream()
    server = web.Server(upstream.handle)  # type: ignore[arg-type]
    # Hung handlers are released at cleanup; the timeout only bounds one that is not.
    runner = web.ServerRunner(server, shutdown_timeout=0.5)
    await runner.setup()
    port = free_port()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    upstream.url = f"http://127.0.0.1:{port}/work"
    upstream.server = server
    try:
        yield upstream
    finally:
        upstream.released.set()
        await runner.cleanup()
