"""The outermost ASGI middleware: adopts or mints the request id, echoes it, writes one JSON
access line per request, and is the last-resort error boundary, so even an unforeseen exception
is logged with its request id and answered with a problem document instead of a bare 500."""

from __future__ import annotations

import asyncio
import logging
import re
import time
import uuid

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.common.logs import request_id_var
from services.common.problems import problem

log = logging.getLogger(__name__)
access_log = logging.getLogger("access")
# nginx's $request_id is 32 hex digits; accept any similar token from a trusted caller but never
# let a header inject arbitrary text into the logs.
_VALID_ID = re.compile(rb"^[A-Za-z0-9._:-]{1,128}$")
_HEADER = b"x-request-id"
QUIET_PATHS = frozenset({"/healthz", "/readyz", "/status", "/metrics"})


def arrived_at(scope_state: object) -> float:
    """When the request reached this process, on the loop's clock (now, if not recorded)."""
    recorded = getattr(scope_state, "arrived_at", None)
    return float(recorded) if recorded is not None else asyncio.get_running_loop().time()


class RequestContextMiddleware:
    def __init__(self, app: ASGIApp, *, access_log_enabled: bool = True) -> None:
        self.app = app
        self.access_log_enabled = access_log_enabled

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = next((v for k, v in scope["headers"] if k == _HEADER), None)
        raw_id = incoming if incoming and _VALID_ID.match(incoming) else uuid.uuid4().hex.encode()
        request_id = raw_id.decode()
        token = request_id_var.set(request_id)
        # On the loop's clock, before any other middleware (the in-flight cap) ran: a deadline
        # the caller gave counts from here (`arrived_at`).
        scope.setdefault("state", {})["arrived_at"] = asyncio.get_running_loop().time()
        status = 500
        started = time.perf_counter()
        response_started = False

        async def send_with_id(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                status = message["status"]
                response_started = True
                message["headers"] = [*message.get("headers", []), (_HEADER, raw_id)]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            log.exception("unhandled error")
            if response_started:
                raise
            await problem(500, "internal error; the request id identifies it in the logs")(
                scope, receive, send_with_id
            )
        finally:
            if self.access_log_enabled and scope["path"] not in QUIET_PATHS:
                access_log.info(
                    "request",
                    extra={
                        "method": scope["method"],
                        "path": scope["path"],
                        "status": status,
                        "duration_ms": round((time.perf_counter() - started) * 1000, 3),
                    },
                )
            request_id_var.reset(token)
