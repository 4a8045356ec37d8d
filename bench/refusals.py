"""The explicit refusals a run met, read from the services' own counters: the requests a worker
refused at its adaptive admission limit (503) and those refused at the cluster-wide in-flight cap
(429), both with `Retry-After`. wrk sees only statuses; these counters say which of its >= 400
answers were the cluster declining work it could not serve fast (docs/reliability.md) rather
than failing at it. Counting them here instead of in a wrk `response()` callback keeps wrk's
per-request path free of Lua, so every endpoint is measured as before.

Each instance's /metrics sums its workers (gunicorn's multiprocess mode keeps a dead worker's
counts), so the difference of two readings is the refusals between them."""

from __future__ import annotations

import urllib.request

from prometheus_client.parser import text_string_to_metric_families

from cluster.topology import Topology


def refusals_of(topo: Topology, service: str, timeout_s: float = 5.0) -> int:
    """Refusals so far, summed over the service's instances; an instance that does not answer
    counts 0 (a run against it fails on its own errors)."""
    # Admission control's counter (services/common/admission_middleware.py) and the in-flight
    # cap's (services/common/limiter.py).
    names = {"quartet_admission_refused", f"{service}_inflight_rejected"}
    total = 0.0
    for instance in topo.instances_of(service):
        url = f"http://127.0.0.1:{instance.port}/metrics"
        try:
            with urllib.request.urlopen(url, timeout=timeout_s) as answer:
                text = answer.read().decode()
        except OSError:
            continue
        for family in text_string_to_metric_families(text):
            if family.name not in names:
                continue
            total += sum(
                sample.value
                for sample in family.samples
                if sample.name.endswith("_total")
                and sample.labels.get("service", service) == service
            )
    return round(total)
