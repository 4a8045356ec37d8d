"""`make bench --tracing`'s parts (bench/tracing_phase.py): the receiver counts what the SDK's own
OTLP exporter sends it, the running cluster's tracing is read from its supervisord file, and the
table sets each endpoint off beside on."""

from __future__ import annotations

from pathlib import Path

import tracing_phase
from endpoints import CEILING, endpoint_named
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from rounds import Row

from cluster.topology import ClusterSettings, Topology
from services.common import tracing
from tests.bench.test_wrk_output import result


def test_the_receiver_counts_what_an_otlp_exporter_sends() -> None:
    with tracing_phase.OtlpSink() as sink:
        # A provider of the test's own, never the global one.
        provider = TracerProvider()
        exporter = OTLPSpanExporter(endpoint=f"{sink.endpoint}/v1/traces")
        provider.add_span_processor(BatchSpanProcessor(exporter))
        tracer = provider.get_tracer("test")
        for index in range(7):
            with tracer.start_as_current_span(f"span {index}"):
                pass
        assert provider.force_flush(10_000)
        provider.shutdown()
        received = sink.snapshot()
    assert received["spans"] == 7
    assert received["requests"] >= 1
    assert received["bytes"] > 0


def test_the_traced_environment_is_one_the_kit_turns_on() -> None:
    env = tracing_phase.traced_env("http://127.0.0.1:4318")
    assert tracing.exporter_names(env) == ["otlp_proto_http"]
    assert env["OTEL_TRACES_SAMPLER"] == "parentbased_always_on"


def test_the_running_clusters_tracing_is_read_from_its_process_file(tmp_path: Path) -> None:
    topo = Topology(ClusterSettings(STATE_DIR=tmp_path, PORT_OFFSET=0))
    assert tracing_phase.cluster_tracing(topo) is None  # no cluster there
    conf = topo.supervisor_conf
    conf.parent.mkdir(parents=True, exist_ok=True)
    conf.write_text('[program:counter_1]\nenvironment=ADMIN_TOKEN="x",LOG_LEVEL="INFO"\n')
    assert tracing_phase.cluster_tracing(topo) is None
    conf.write_text('environment=OTEL_TRACES_EXPORTER="none"\n')
    assert tracing_phase.cluster_tracing(topo) is None
    conf.write_text('environment=A="1",OTEL_TRACES_EXPORTER="console",B="2"\n' * 2)
    assert tracing_phase.cluster_tracing(topo) == "console"


def test_the_table_sets_off_beside_on() -> None:
    off, on = Row(CEILING), Row(CEILING)
    off.runs, on.runs = [result(6000, p99=10)], [result(4500, p99=20)]
    page_off, page_on = (
        Row(endpoint_named("page composition")),
        Row(endpoint_named("page composition")),
    )
    page_off.runs, page_on.runs = [result(1000)], [result(0)]
    table = tracing_phase.format_table([(off, on), (page_off, page_on)])
    lines = table.splitlines()
    assert lines[0].split()[:4] == ["endpoint", "off", "req/s", "on"]
    assert "6000" in lines[2]
    assert "4500" in lines[2]
    assert " 0.75 " in lines[2]
    assert " 0.00 " in lines[3]
