"""Is an answer admission control's explicit refusal (a worker's 503, or the gateway's when no
instance can take more: docs/reliability.md, "Admission control")? Such an answer did no work and
asks the client to come back after Retry-After; a load test counts it apart from errors, and a
client in a test that is not about overload sends the request again, as a well-behaved one does.
What the refusals say is cluster/chaos/traffic.py's REFUSALS (one list)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

import httpx
import orjson

from cluster.chaos.traffic import REFUSALS

# How often a test's client sends a refused request again before it takes the refusal as its
# answer: on a loaded machine a worker descheduled for 100 ms refuses what waited that long
# (services/common/queue_delay.py).
RETRIES = 3


def is_refusal(status: int, headers: Mapping[str, str], body: bytes) -> bool:
    # Header names as the client gives them: httpx's and aiohttp's mappings are case-insensitive.
    if status != 503 or "retry-after" not in headers:
        return False
    try:
        detail = orjson.loads(body).get("detail")
    except (orjson.JSONDecodeError, AttributeError):
        return False
    return detail in REFUSALS


def retry_after_s(headers: Mapping[str, str]) -> float:
    return float(headers["retry-after"])


async def httpx_get(client: httpx.AsyncClient, url: str) -> httpx.Response:
    """GET as a well-behaved client: a refused request is sent again after its Retry-After, up to
    RETRIES times; the last answer."""
    response = await client.get(url)
    for _ in range(RETRIES):
        if not is_refusal(response.status_code, response.headers, response.content):
            break
        await asyncio.sleep(retry_after_s(response.headers))
        response = await client.get(url)
    return response
