"""The kit's tracing switch, its log filter and an app traced in-process
(services/common/tracing.py).

Turning tracing on sets process-wide state (the global tracer provider, redis-py patched), so the
traced app runs in a child process; the tests here only ever see tracing off in their own."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import TracerProvider

from cluster.service_env import service_env
from cluster.topology import ClusterSettings, Topology
from services.common import description, tracing
from services.common.app import create_app
from services.common.logs import TraceContextFilter, configure_logging
from services.common.settings import ServiceSettings
from tests.support.asgi import serve

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "tracing-test-token-0123456789abcdef"


@pytest.mark.parametrize(
    ("environ", "names"),
    [
        ({}, []),
        ({"OTEL_TRACES_EXPORTER": ""}, []),
        ({"OTEL_TRACES_EXPORTER": "none"}, []),
        ({"OTEL_TRACES_EXPORTER": " None "}, []),
        ({"OTEL_TRACES_EXPORTER": "console"}, ["console"]),
        ({"OTEL_TRACES_EXPORTER": "otlp"}, ["otlp_proto_http"]),
        ({"OTEL_TRACES_EXPORTER": "otlp,console"}, ["otlp_proto_http", "console"]),
        (
            {"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"},
            ["otlp_proto_grpc"],
        ),
        (
            {
                "OTEL_TRACES_EXPORTER": "otlp",
                "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
                "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/protobuf",
            },
            ["otlp_proto_http"],
        ),
        ({"OTEL_TRACES_EXPORTER": "otlp_proto_http"}, ["otlp_proto_http"]),
        ({"OTEL_TRACES_EXPORTER": "console", "OTEL_SDK_DISABLED": "true"}, []),
        ({"OTEL_TRACES_EXPORTER": "console", "OTEL_SDK_DISABLED": "false"}, ["console"]),
    ],
)
def test_the_exporter_variable_decides(environ: dict[str, str], names: list[str]) -> None:
    assert tracing.exporter_names(environ) == names
    assert tracing.enabled(environ) is bool(names)


def test_an_unknown_protocol_or_exporter_is_refused() -> None:
    with pytest.raises(ValueError, match="protocol"):
        tracing.exporter_names(
            {"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"}
        )
    with pytest.raises(ValueError, match="no span exporter 'zipkin'"):
        tracing._exporter("zipkin")


async def test_off_installs_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OTEL_TRACES_EXPORTER", raising=False)
    app = create_app("apptest", ServiceSettings(ADMIN_TOKEN=TOKEN), routers=[])
    async with serve(app) as client:
        assert (await client.get("/ping")).status_code == 200
    assert tracing._provider is None
    assert not getattr(app, "_is_instrumented_by_opentelemetry", False)
    assert tracing.client_trace_configs() == []
    assert tracing.mysql_cursor_class() is None
    import redis.asyncio

    assert not hasattr(redis.asyncio.Redis.execute_command, "__wrapped__")
    handler = logging.getLogger().handlers[0]
    assert not any(isinstance(f, TraceContextFilter) for f in handler.filters)


def _lines(out: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


@pytest.mark.parametrize("traced", [True, False])
def test_log_lines_carry_the_current_span(traced: bool, capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("logtest", traced=traced)
    log = logging.getLogger("test.tracing")
    # A provider of the test's own, never the global one: start_as_current_span sets the context.
    tracer = TracerProvider().get_tracer("test")
    log.info("before")
    with tracer.start_as_current_span("outer") as outer:
        log.info("inside")
        with tracer.start_as_current_span("inner") as inner:
            log.info("nested")
    log.info("after")
    lines = {line["message"]: line for line in _lines(capsys.readouterr().out)}
    assert set(lines) == {"before", "inside", "nested", "after"}
    for line in lines.values():
        assert "trace_id" in line
        assert "span_id" in line
    for untraced in ("before", "after"):
        assert lines[untraced]["trace_id"] is None
        assert lines[untraced]["span_id"] is None
    if not traced:
        assert all(line["trace_id"] is None for line in lines.values())
        return
    trace_id = format(outer.get_span_context().trace_id, "032x")
    assert lines["inside"]["trace_id"] == trace_id
    assert lines["inside"]["span_id"] == format(outer.get_span_context().span_id, "016x")
    assert lines["nested"]["trace_id"] == trace_id
    assert lines["nested"]["span_id"] == format(inner.get_span_context().span_id, "016x")
    assert len(str(lines["nested"]["span_id"])) == 16


def test_the_statement_verb_names_a_mysql_span() -> None:
    assert tracing._operation("SELECT 1") == "SELECT"
    assert tracing._operation("\n  insert into t values (1)") == "INSERT"
    assert tracing._operation("(SELECT 1) UNION (SELECT 2)") == "SELECT"
    assert tracing._operation("   ") == ""


def test_the_local_cluster_passes_otel_variables_to_every_service(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "console")
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "parentbased_traceidratio")
    monkeypatch.setenv("OTEL_TRACES_SAMPLER_ARG", "0.25")
    topo = Topology(ClusterSettings(STATE_DIR=tmp_path, PORT_OFFSET=0))
    (tmp_path / "secrets").mkdir()
    for spec in description.SERVICES:
        for name in (*spec.secrets, "ADMIN_TOKEN"):
            (tmp_path / "secrets" / name.lower()).write_text("s" * 32)
    served = {i.service for i in topo.instances}
    assert served >= {"counter", "banner", "recommender", "aggregator"}
    for instance in topo.instances:
        env = service_env(topo, instance, "mysql://u:p@127.0.0.1:3306/db")
        assert env["OTEL_TRACES_EXPORTER"] == "console", instance.name
        assert env["OTEL_TRACES_SAMPLER"] == "parentbased_traceidratio"
        assert env["OTEL_TRACES_SAMPLER_ARG"] == "0.25"


# The child: tracing on with the console exporter, one app of the kit served in-process, one
# request with a given traceparent; it prints the log and span lines on stdout.
_CHILD = textwrap.dedent(
    """
    import asyncio, logging
    from fastapi import APIRouter
    from services.common.app import create_app
    from services.common.settings import ServiceSettings
    from services.common import tracing
    from tests.support.asgi import serve

    router = APIRouter()

    @router.get("/traced")
    async def traced() -> dict[str, bool]:
        logging.getLogger("test.traced").info("inside the route")
        return {"ok": True}

    async def main() -> None:
        app = create_app(
            "tracetest", ServiceSettings(ADMIN_TOKEN="x" * 32, ACCESS_LOG=True), routers=[router]
        )
        async with serve(app) as client:
            response = await client.get("/traced", headers={"traceparent": TRACEPARENT})
            assert response.status_code == 200
            assert (await client.get("/healthz")).status_code == 200
        assert tracing._provider is not None
        tracing._provider.shutdown()

    asyncio.run(main())
    """
)


def test_an_app_traced_in_process_continues_the_callers_trace() -> None:
    trace_id, parent = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    env = {**os.environ, "OTEL_TRACES_EXPORTER": "console", "OTEL_SERVICE_NAME": "renamed"}
    script = f"TRACEPARENT = '00-{trace_id}-{parent}-01'\n" + _CHILD
    child = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert child.returncode == 0, child.stderr[-3000:]
    lines = _lines(child.stdout)
    spans = [line for line in lines if "context" in line]
    logs = [line for line in lines if "context" not in line]
    server = [s for s in spans if s["kind"] == "SpanKind.SERVER"]
    assert [s["name"] for s in server] == ["GET /traced"], spans  # not /healthz
    span = server[0]
    assert span["context"]["trace_id"] == f"0x{trace_id}"  # type: ignore[index]
    assert span["parent_id"] == f"0x{parent}"
    assert span["resource"]["attributes"]["service.name"] == "renamed"  # type: ignore[index]
    span_id = str(span["context"]["span_id"]).removeprefix("0x")  # type: ignore[index]
    route = next(line for line in logs if line["message"] == "inside the route")
    access = next(line for line in logs if line["logger"] == "access")
    for line in (route, access):
        assert line["trace_id"] == trace_id
        assert line["span_id"] == span_id
        assert line["service"] == "tracetest"


def test_off_a_worker_loads_no_tracing_code() -> None:
    script = textwrap.dedent(
        """
        import sys
        from services.aggregator.app import build_app
        from services.aggregator.settings import AggregatorSettings
        build_app(AggregatorSettings(ADMIN_TOKEN="x" * 32))
        # (FastAPI itself loads the SDK's metrics and resources: not the kit's doing.)
        loaded = sorted(m for m in sys.modules if m.startswith(("opentelemetry.sdk.trace",
            "opentelemetry.instrumentation", "opentelemetry.exporter")))
        print(loaded)
        """
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    child = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert child.returncode == 0, child.stderr[-3000:]
    assert child.stdout.strip().splitlines()[-1] == "[]"
