"""The local Prometheus: the repository's prometheus/ copied under the state directory, with this
cluster's scrape targets (file_sd) beside it. The jobs themselves are in prometheus/prometheus.yml
(its service jobs a generated region: cluster/monitoring_config.py)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from cluster.topology import ROOT, Topology
from services.common import description


def render_prometheus(topo: Topology) -> Path:
    target = topo.state / "prometheus"
    for child in ("rules", "tests", "mtail", "targets"):
        shutil.rmtree(target / child, ignore_errors=True)
    shutil.copytree(ROOT / "prometheus", target, dirs_exist_ok=True)
    targets = target / "targets"
    targets.mkdir(exist_ok=True)

    def write(job: str, groups: list[dict[str, object]]) -> None:
        (targets / f"{job}.json").write_text(json.dumps(groups, indent=1))

    for spec in description.SERVICES:
        write(
            spec.name, [{"targets": [f"127.0.0.1:{i.port}" for i in topo.instances_of(spec.name)]}]
        )
    write(
        "gateway",
        [
            {
                "targets": [
                    f"127.0.0.1:{topo.nginx_exporter_port}",
                    f"127.0.0.1:{topo.mtail_port}",
                ]
            }
        ],
    )
    write(
        "redis",
        [
            {
                "targets": [f"redis://127.0.0.1:{port}"],
                "labels": {"shard": name, "exporter": f"127.0.0.1:{topo.redis_exporter_port}"},
            }
            for name, port in zip(topo.shard_names, topo.redis_ports, strict=True)
        ],
    )
    write("mysql", [{"targets": [f"127.0.0.1:{topo.mysqld_exporter_port}"]}])
    write("prometheus", [{"targets": [f"127.0.0.1:{topo.prometheus_port}"]}])
    return target
