"""Prometheus and the exporters (Debian's packages) as supervisord programs of the local cluster."""

from __future__ import annotations

from collections.abc import Callable

from cluster.supervisor_program import program
from cluster.topology import Topology, which
from services.common.mysql import MysqlTarget


def programs(topo: Topology, mysql_dsn: str, log_for: Callable[[str], str]) -> list[str]:
    state = topo.state
    mysql = MysqlTarget.from_dsn(mysql_dsn)
    commands: list[tuple[str, list[str], dict[str, str]]] = [
        (
            "prometheus",
            [
                which("prometheus"),
                f"--config.file={state / 'prometheus' / 'prometheus.yml'}",
                f"--storage.tsdb.path={state / 'prometheus' / 'data'}",
                "--storage.tsdb.retention.time=2d",
                f"--web.listen-address=127.0.0.1:{topo.prometheus_port}",
            ],
            {},
        ),
        (
            "nginx_exporter",
            [
                which("prometheus-nginx-exporter"),
                f"-nginx.scrape-uri=http://127.0.0.1:{topo.internal_port}/_status",
                f"-web.listen-address=127.0.0.1:{topo.nginx_exporter_port}",
            ],
            {},
        ),
        (
            "redis_exporter",
            [
                which("prometheus-redis-exporter"),
                "-redis.addr=",
                f"-web.listen-address=127.0.0.1:{topo.redis_exporter_port}",
            ],
            {},
        ),
        (
            "mysqld_exporter",
            [
                which("prometheus-mysqld-exporter"),
                f"--web.listen-address=127.0.0.1:{topo.mysqld_exporter_port}",
            ],
            {"DATA_SOURCE_NAME": f"{mysql.user}:{mysql.password}@({mysql.host}:{mysql.port})/"},
        ),
        (
            "mtail",
            [
                which("mtail"),
                "-progs",
                str(state / "prometheus" / "mtail"),
                "-logs",
                str(state / "nginx" / "logs" / "metrics.log"),
                "-address",
                "127.0.0.1",
                "-port",
                str(topo.mtail_port),
                "-emit_prog_label=false",
            ],
            {},
        ),
    ]
    # The nginx exporter exits when nginx does not answer and supervisord gives up after a few
    # tries: it starts with nginx (orchestrate), not with the others, which need nothing.
    return [
        program(
            name,
            command,
            log=log_for(name),
            autostart=name != "nginx_exporter",
            priority=950,
            stopwait=15,
            env=env,
        )
        for name, command, env in commands
    ]
