"""The workers' protocol never formats uvicorn's access line (the kit writes its own)."""

from __future__ import annotations

import asyncio
import logging

from uvicorn.config import Config
from uvicorn.server import ServerState

from services.common.http_protocol import ProblemHttpToolsProtocol


async def _app(scope: object, receive: object, send: object) -> None:  # pragma: no cover
    raise AssertionError("not called")


def test_access_line_off_even_when_the_logger_has_handlers() -> None:
    logger = logging.getLogger("uvicorn.access")
    handler = logging.NullHandler()
    logger.addHandler(handler)
    try:
        assert logger.hasHandlers()  # what uvicorn's own protocol decides by
        loop = asyncio.new_event_loop()
        try:
            protocol = ProblemHttpToolsProtocol(
                Config(app=_app), ServerState(), app_state={}, _loop=loop
            )
        finally:
            loop.close()
        assert protocol.access_log is False
    finally:
        logger.removeHandler(handler)
