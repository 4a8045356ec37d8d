"""JSON logs on stdout, one object per line, each carrying the service name and the request id,
and, written while a span is current (tracing on: services/common/tracing.py), its `trace_id`
and `span_id` in hex (null otherwise)."""

from __future__ import annotations

import logging
import sys
from contextvars import ContextVar

from opentelemetry import trace
from pythonjsonlogger.orjson import OrjsonFormatter

# Set by the request-id middleware for the duration of a request; tasks spawned inside a request
# inherit it, so background work started by a request logs the same id.
request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)


class _ContextFilter(logging.Filter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def filter(self, record: logging.LogRecord) -> bool:
        record.service = self.service
        record.request_id = request_id_var.get()
        record.trace_id = None
        record.span_id = None
        return True


class TraceContextFilter(logging.Filter):
    """Adds the current span's ids (W3C hex: 32 and 16 digits); installed only when tracing is
    on. A span that is not sampled still has valid ids, so its lines still tie to the gateway's
    access line and to a trace whose other services sampled it."""

    def filter(self, record: logging.LogRecord) -> bool:
        context = trace.get_current_span().get_span_context()
        if context.is_valid:
            record.trace_id = format(context.trace_id, "032x")
            record.span_id = format(context.span_id, "016x")
        return True


def configure_logging(service: str, level: str = "INFO", *, traced: bool = False) -> None:
    """Route every logger (ours, uvicorn's, gunicorn's) through one JSON handler on stdout."""
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(
        OrjsonFormatter(
            "%(levelname)s %(name)s %(message)s %(service)s %(request_id)s"
            " %(trace_id)s %(span_id)s",
            rename_fields={"levelname": "level", "name": "logger"},
            timestamp="time",
        )
    )
    handler.addFilter(_ContextFilter(service))
    if traced:
        handler.addFilter(TraceContextFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "gunicorn.error"):
        logger = logging.getLogger(name)
        logger.handlers[:] = []
        logger.propagate = True
    # The middleware writes one access line per request with the request id; uvicorn's own
    # access line would be a second, id-less copy.
    logging.getLogger("uvicorn.access").disabled = True
    # httpx logs every outgoing request at INFO; the callers log what matters to them.
    logging.getLogger("httpx").setLevel(logging.WARNING)
