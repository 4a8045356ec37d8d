"""A TEST DOUBLE, not a product service: the "work" server of the fan-out assignment.

Every GET answers `{"time": t}` after t ms, t uniform in WORKSIM_MIN_MS..WORKSIM_MAX_MS (100..600),
and fails at configurable rates, each a probability from 0 to 1:

    WORKSIM_P_500      answers 500
    WORKSIM_P_429      answers 429
    WORKSIM_P_INVALID  answers 200 with a body that is not JSON
    WORKSIM_P_HANG     never answers (holds the connection WORKSIM_HANG_S, then closes)

It is the default upstream of the local cluster, the tests and the load tests. A bare ASGI app,
so the simulator costs as little CPU as possible: `uvicorn services.worksim.app:app`.
"""

from __future__ import annotations

import asyncio
import os
import random

import orjson
from starlette.types import Receive, Scope, Send


def _rate(name: str) -> float:
    value = float(os.environ.get(name, "0"))
    if not 0 <= value <= 1:
        raise ValueError(f"{name} must be between 0 and 1")
    return value


MIN_MS = int(os.environ.get("WORKSIM_MIN_MS", "100"))
MAX_MS = int(os.environ.get("WORKSIM_MAX_MS", "600"))
HANG_S = float(os.environ.get("WORKSIM_HANG_S", "30"))
FAILURES = (
    ("500", _rate("WORKSIM_P_500")),
    ("429", _rate("WORKSIM_P_429")),
    ("invalid", _rate("WORKSIM_P_INVALID")),
    ("hang", _rate("WORKSIM_P_HANG")),
)
_random = random.Random()


def _fate() -> str:
    roll = _random.random()
    for name, rate in FAILURES:
        if roll < rate:
            return name
        roll -= rate
    return "ok"


async def _send(send: Send, status: int, body: bytes, content_type: bytes) -> None:
    headers = [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    if scope["type"] != "http":
        return
    if scope["path"] == "/healthz":
        await _send(send, 200, b'{"status":"ok"}', b"application/json")
        return
    took = _random.randint(MIN_MS, MAX_MS)
    fate = _fate()
    if fate == "hang":
        await asyncio.sleep(HANG_S)
        return
    await asyncio.sleep(took / 1000)
    if fate == "500":
        await _send(send, 500, b'{"error":"internal"}', b"application/json")
    elif fate == "429":
        await _send(send, 429, b'{"error":"slow down"}', b"application/json")
    elif fate == "invalid":
        await _send(send, 200, b"{time: not json", b"application/json")
    else:
        await _send(send, 200, orjson.dumps({"time": took}), b"application/json")
