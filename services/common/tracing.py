"""Tracing with OpenTelemetry, off unless `OTEL_TRACES_EXPORTER` names an exporter
(docs/tracing.md).

Configured only by the standard `OTEL_*` variables: the exporter (`OTEL_TRACES_EXPORTER`:
`otlp`, `otlp_proto_http`, `console`, comma-separated), where it sends (`OTEL_EXPORTER_OTLP_*`),
the sampler (`OTEL_TRACES_SAMPLER`, `OTEL_TRACES_SAMPLER_ARG`, read by the SDK's TracerProvider),
the resource (`OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`, over the kit's defaults) and the
batch processor (`OTEL_BSP_*`). One deviation from the specification: unset means `none`, not
`otlp`, so a service nobody configured pays nothing for tracing. Off, nothing of it is installed:
no middleware, no wrapper around a Redis, MySQL or HTTP client call, no provider, no thread.

On, every worker (gunicorn forks first, then builds the app: the batch processor's thread is the
worker's own) gets one TracerProvider with a BatchSpanProcessor per exporter, and:
- the FastAPI/ASGI instrumentation around the whole middleware stack: one SERVER span per request,
  its parent taken from the request's W3C `traceparent` (the gateway always sends one);
- the aiohttp-client instrumentation on the sessions the service builds (`client_trace_configs`):
  one CLIENT span per call, `traceparent` injected into it;
- the redis instrumentation: one CLIENT span per command or pipeline;
- MySQL: no instrumentation of aiomysql exists on PyPI (pymysql's and dbapi's wrap blocking
  connections), so the pool's cursors are `TracedCursor`s: one CLIENT span per statement, with
  the database semantic conventions' attributes.
"""

from __future__ import annotations

import logging
import os
import socket
import sys
from collections.abc import Coroutine, Mapping
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any

import aiomysql
from opentelemetry import trace
from opentelemetry.trace import SpanKind

if TYPE_CHECKING:
    # Imported where tracing is switched on, not here: off, a worker loads none of it.
    import aiohttp
    from fastapi import FastAPI
    from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter

log = logging.getLogger(__name__)

EXPORTER_ENV = "OTEL_TRACES_EXPORTER"
# Never traced: the probes and the scrape (they would be most of the spans and tell nothing).
EXCLUDED_URLS = "/healthz$,/readyz$,/status$,/metrics$"
_OTLP_BY_PROTOCOL = {"http/protobuf": "otlp_proto_http", "grpc": "otlp_proto_grpc"}

_provider: TracerProvider | None = None


def exporter_names(environ: Mapping[str, str] = os.environ) -> list[str]:
    """The exporters `OTEL_TRACES_EXPORTER` asks for; empty when tracing is off (also when
    `OTEL_SDK_DISABLED=true`, the specification's switch for the whole SDK)."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return []
    raw = environ.get(EXPORTER_ENV, "").strip()
    if raw.lower() in ("", "none"):
        return []
    names = []
    for name in (part.strip() for part in raw.split(",")):
        if name == "otlp":
            # The specification's default protocol; the SDK's is grpc, whose exporter (and
            # grpcio) this project does not install.
            protocol = (
                environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
                or environ.get("OTEL_EXPORTER_OTLP_PROTOCOL")
                or "http/protobuf"
            ).strip()
            if protocol not in _OTLP_BY_PROTOCOL:
                raise ValueError(f"unsupported OTLP protocol {protocol!r}")
            name = _OTLP_BY_PROTOCOL[protocol]
        if name and name != "none":
            names.append(name)
    return names


def enabled(environ: Mapping[str, str] = os.environ) -> bool:
    return bool(exporter_names(environ))


def _one_line(span: ReadableSpan) -> str:
    return str(span.to_json(indent=None)) + "\n"


def _exporter(name: str) -> SpanExporter:
    from opentelemetry.sdk.trace.export import ConsoleSpanExporter

    if name == "console":
        # One JSON object a line on stdout, beside the service's JSON log lines (the SDK's
        # default indents each span over forty lines).
        return ConsoleSpanExporter(out=sys.stdout, formatter=_one_line)
    found = entry_points(group="opentelemetry_traces_exporter", name=name)
    if not found:
        raise ValueError(f"{EXPORTER_ENV}: no span exporter {name!r} is installed")
    exporter_class = next(iter(found)).load()
    exporter: SpanExporter = exporter_class()
    return exporter


def setup(service: str, environ: Mapping[str, str] = os.environ) -> TracerProvider | None:
    """This process's tracer provider, made on the first call when tracing is on; else None.

    Instrumentation that patches libraries process-wide (redis) is installed here, once."""
    global _provider
    if _provider is not None:
        return _provider
    names = exporter_names(environ)
    if not names:
        return None
    from opentelemetry.sdk.resources import (
        SERVICE_INSTANCE_ID,
        SERVICE_NAME,
        OTELResourceDetector,
        Resource,
    )
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    defaults = Resource.create(
        {SERVICE_NAME: service, SERVICE_INSTANCE_ID: f"{socket.gethostname()}:{os.getpid()}"}
    )
    # OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES win over the kit's defaults.
    provider = TracerProvider(resource=defaults.merge(OTELResourceDetector().detect()))
    for name in names:
        provider.add_span_processor(BatchSpanProcessor(_exporter(name)))
    trace.set_tracer_provider(provider)
    from opentelemetry.instrumentation.redis import RedisInstrumentor

    RedisInstrumentor().instrument(tracer_provider=provider)
    _provider = provider
    log.info("tracing on", extra={"exporters": names})
    return provider


def instrument_app(app: FastAPI, provider: TracerProvider) -> None:
    """One SERVER span per request, outside every middleware of the kit (so the request-context
    middleware's lines carry the span)."""
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

    FastAPIInstrumentor.instrument_app(
        app,
        tracer_provider=provider,
        excluded_urls=os.environ.get("OTEL_PYTHON_FASTAPI_EXCLUDED_URLS", EXCLUDED_URLS),
        # The ASGI send/receive events as spans of their own: three more per request, no news.
        exclude_spans=["receive", "send"],
    )


def client_trace_configs() -> list[aiohttp.TraceConfig]:
    """What an aiohttp session needs to trace its calls and propagate the context: nothing when
    tracing is off."""
    if _provider is None:
        return []
    from opentelemetry.instrumentation.aiohttp_client import create_trace_config

    return [create_trace_config(tracer_provider=_provider)]


def mysql_cursor_class() -> type[aiomysql.Cursor] | None:
    """The cursor class for the pool: `TracedCursor` when tracing is on, else aiomysql's own."""
    return TracedCursor if _provider is not None else None


class TracedCursor(aiomysql.Cursor):  # type: ignore[misc]
    """aiomysql's cursor with one CLIENT span per statement (`execute`, or one for a whole
    `executemany`), named by the statement's verb, with `db.*` and `server.*` attributes."""

    _in_many = False

    def _attributes(self, query: str) -> dict[str, Any]:
        conn = self.connection
        operation = _operation(query)
        attributes: dict[str, Any] = {
            "db.system.name": "mysql",
            "db.system": "mysql",
            "db.namespace": conn.db or "",
            "db.query.text": query,
            "server.address": conn.host,
            "server.port": conn.port,
        }
        if operation:
            attributes["db.operation.name"] = operation
        return attributes

    async def execute(self, query: str, args: Any = None) -> int:
        if self._in_many:
            return int(await super().execute(query, args))
        with _tracer().start_as_current_span(
            _operation(query) or "mysql", kind=SpanKind.CLIENT, attributes=self._attributes(query)
        ):
            return int(await super().execute(query, args))

    async def executemany(self, query: str, args: Any) -> int | None:
        with _tracer().start_as_current_span(
            _operation(query) or "mysql", kind=SpanKind.CLIENT, attributes=self._attributes(query)
        ) as span:
            span.set_attribute("db.operation.batch.size", len(args) if args else 0)
            self._in_many = True
            try:
                rows = await super().executemany(query, args)
            finally:
                self._in_many = False
            return int(rows) if rows is not None else None


def _operation(query: str) -> str:
    words = query.lstrip(" \t\r\n(").split(None, 1)
    return words[0].upper() if words else ""


def _tracer() -> trace.Tracer:
    return trace.get_tracer("services.common.mysql", tracer_provider=_provider)


async def untraced(job: Coroutine[Any, Any, None]) -> None:
    """Runs `job` with instrumentation suppressed: the dependency watch's pings (every few
    seconds, in every worker) would be traces of their own that tell nothing."""
    from opentelemetry.instrumentation.utils import suppress_instrumentation

    with suppress_instrumentation():
        await job


def shutdown() -> None:
    """Export what is buffered (the worker is stopping), for at most 2 s: well inside gunicorn's
    graceful timeout, and a collector that is down costs no longer. (The SDK's own exit hook
    shuts the provider down after that.)"""
    if _provider is not None:
        _provider.force_flush(timeout_millis=2000)
