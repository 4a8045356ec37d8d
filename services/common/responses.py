"""orjson-rendered responses: hot routes return these directly, skipping response-model work."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import Response


class OrjsonResponse(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


class ProblemResponse(OrjsonResponse):
    """An RFC 9457 problem document."""

    media_type = "application/problem+json"
