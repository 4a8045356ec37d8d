"""`make bench BENCH_ARGS=--tracing`: what tracing costs. After the usual rounds (the running
cluster, tracing off as `make up` starts it), the cluster is restarted with tracing on at 100 %
sampling, exporting over OTLP http/protobuf to a small receiver this script runs (OtlpSink), the
same rounds run again, and the cluster is restarted as it was. Each endpoint's row gets an "on"
twin: its goodput, latency, and the ratio on/off.

Why this exporter: the services do all the work a real deployment's exporter does (spans built,
batched, encoded to protobuf, POSTed over HTTP by the batch processor's thread); the receiver
decodes each request only to count its spans (a collector would do more, elsewhere). The console
exporter would measure the log pipe, and an in-process sink would skip the export.

The off and on rounds run one after the other, not interleaved (one cluster), so a drift of the
machine's load lands in the ratio: compare the ceilings of the two phases, and run two rounds or
more. The restarts reuse the state (data, secrets, ports) and the caller's environment, so run
the bench from the shell that started the cluster (the WORKSIM_* settings of the fan-out rows).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from probes import NotFit
from progress import step

from cluster.topology import Topology

ROOT = Path(__file__).resolve().parents[1]
# Every span sampled: the gateway marks the traceparent it mints as sampled, and always_on
# samples a request without one just the same.
SAMPLER = "parentbased_always_on"


def traced_env(endpoint: str) -> dict[str, str]:
    return {
        "OTEL_TRACES_EXPORTER": "otlp",
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
        "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
        "OTEL_TRACES_SAMPLER": SAMPLER,
    }


def cluster_tracing(topo: Topology) -> str | None:
    """The exporter the running cluster's services were started with (supervisord's file), or
    None when tracing is off there."""
    try:
        conf = topo.supervisor_conf.read_text()
    except OSError:
        return None
    found = {m for m in re.findall(r'OTEL_TRACES_EXPORTER="([^"]*)"', conf) if m.strip()}
    found -= {"none"}
    return ",".join(sorted(found)) or None


class OtlpSink:
    """An OTLP/HTTP trace receiver on 127.0.0.1 that counts what it is sent and keeps nothing."""

    def __init__(self) -> None:
        self.requests = 0
        self.spans = 0
        self.bytes = 0
        self._lock = threading.Lock()
        sink = self
        answer = ExportTraceServiceResponse().SerializeToString()

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                ok = self.path == "/v1/traces"
                if ok:
                    request = ExportTraceServiceRequest()
                    request.ParseFromString(body)
                    spans = sum(
                        len(scope.spans)
                        for resource in request.resource_spans
                        for scope in resource.scope_spans
                    )
                    with sink._lock:
                        sink.requests += 1
                        sink.spans += spans
                        sink.bytes += len(body)
                self.send_response(200 if ok else 404)
                self.send_header("content-type", "application/x-protobuf")
                self.send_header("content-length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, format: str, *args: Any) -> None:
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> OtlpSink:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return {"requests": self.requests, "spans": self.spans, "bytes": self.bytes}


def restart_cluster(extra: Mapping[str, str], *, traced: bool) -> None:
    """`python -m cluster down`, then `up` with the caller's environment: with `extra` (tracing
    on), or with every OTEL_ variable removed (tracing off, as it was)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env.update(extra)
    with step("restarting the cluster with tracing " + ("on" if traced else "off")):
        for command in ("down", "up"):
            done = subprocess.run(
                [sys.executable, "-m", "cluster", command],
                cwd=ROOT,
                env=env,
                capture_output=True,
                text=True,
                timeout=600,
                check=False,
            )
            if done.returncode != 0:
                raise NotFit(
                    f"cluster {command} failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}"
                )


def format_table(pairs: list[tuple[Any, Any]]) -> str:
    """Each endpoint off and on (bench/rounds.py Rows): goodput, p50, p99 and on/off."""
    head = (
        f"{'endpoint':<20} {'off req/s':>9} {'on req/s':>9} {'on/off':>6} | "
        f"{'p50 off':>7} {'p50 on':>7} {'p99 off':>7} {'p99 on':>7}"
    )
    lines = [head, "-" * len(head)]
    for off, on in pairs:
        ratio = on.rps / off.rps if off.rps > 0 else 0.0
        lines.append(
            f"{off.endpoint.name:<20} {off.rps:>9.0f} {on.rps:>9.0f} {ratio:>6.2f} | "
            f"{off.latency('p50'):>7.1f} {on.latency('p50'):>7.1f} "
            f"{off.latency('p99'):>7.1f} {on.latency('p99'):>7.1f}"
        )
    return "\n".join(lines)
