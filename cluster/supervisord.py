"""supervisord's configuration of the local cluster: one program per process, one group per
service of services/common/description.py (`ctl start counter:*`), in start order by priority."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path

from cluster import exporters
from cluster.mariadb import mariadb_args
from cluster.service_env import service_env
from cluster.supervisor_program import program
from cluster.topology import WORKSIM_DEFAULTS, Topology, which
from services.common import description


def _header(topo: Topology) -> list[str]:
    state, logs = topo.state, topo.state / "logs"
    return [
        "[supervisord]\n"
        f"logfile={logs / 'supervisord.log'}\n"
        f"pidfile={topo.supervisor_pidfile}\n"
        f"childlogdir={logs}\n"
        # Inherited by every program: nginx and the services hold thousands of sockets under
        # load (the default, 1024, runs out and nginx falls back to its HTML error pages).
        "minfds=10240\n"
        "loglevel=info\n",
        f"[unix_http_server]\nfile={state / 'supervisor.sock'}\nchmod=0700\n",
        f"[supervisorctl]\nserverurl=unix://{state / 'supervisor.sock'}\n",
        "[rpcinterface:supervisor]\n"
        "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface\n",
    ]


def _shards(topo: Topology, log_for: Callable[[str], str]) -> list[str]:
    redis = which("redis-server")
    sections = []
    for name, port in zip(topo.shard_names, topo.redis_ports, strict=True):
        data = topo.state / "redis" / name
        data.mkdir(parents=True, exist_ok=True)
        # AOF with fsync every second: at most a second of counts lost on a machine crash.
        command = [
            redis,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(data),
            "--appendonly",
            "yes",
            "--appendfsync",
            "everysec",
            "--save",
            "",
            "--daemonize",
            "no",
            "--protected-mode",
            "yes",
            # A bound, and writes refused at it rather than keys evicted: an evicted key would be
            # a lost count. The counters then hold that shard's visits (up to their per-shard
            # cap, then 503) and the caches miss; RedisShardNearlyFull warns at 80 %.
            "--maxmemory",
            topo.settings.REDIS_MAXMEMORY,
            "--maxmemory-policy",
            "noeviction",
        ]
        sections.append(
            program(name, command, log=log_for(name), autostart=True, priority=10, stopwait=30)
        )
    return sections


def _worksim(topo: Topology, log_for: Callable[[str], str]) -> str:
    env = {**WORKSIM_DEFAULTS, **{k: v for k, v in os.environ.items() if k.startswith("WORKSIM_")}}
    command = [
        str(Path(sys.executable).parent / "uvicorn"),
        description.WORKSIM.app,
        "--host",
        "127.0.0.1",
        "--port",
        str(topo.worksim_port),
        "--no-access-log",
        "--log-level",
        "warning",
    ]
    name = description.WORKSIM.name
    return program(
        name, command, log=log_for(name), autostart=True, priority=300, stopwait=10, env=env
    )


def _services(topo: Topology, mysql_dsn: str, log_for: Callable[[str], str]) -> list[str]:
    """Every instance of every described service; orchestrate() starts them once the stores
    answer and the migrations have run."""
    gunicorn = str(Path(sys.executable).parent / "gunicorn")
    sections = []
    for spec in description.SERVICES:
        members = topo.instances_of(spec.name)
        for instance in members:
            command = [
                gunicorn,
                "-c",
                "python:services.common.gunicorn_conf",
                "--bind",
                f"127.0.0.1:{instance.port}",
                spec.app,
            ]
            sections.append(
                program(
                    instance.name,
                    command,
                    log=log_for(instance.name),
                    autostart=False,
                    priority=500,
                    stopwait=40,
                    env=service_env(topo, instance, mysql_dsn),
                )
            )
        sections.append(f"[group:{spec.name}]\nprograms={','.join(i.name for i in members)}\n")
    return sections


def _nginx(topo: Topology, log_for: Callable[[str], str]) -> str:
    prefix = topo.state / "nginx"
    # As root, nginx's workers would switch to `nobody`, who may not be able to read a state
    # directory under a private home or a 0700 temp dir; locally they stay the invoking user.
    directives = "daemon off; worker_processes auto;" + (" user root;" if os.geteuid() == 0 else "")
    command = [
        which("nginx"),
        "-p",
        f"{prefix}/",
        "-c",
        str(prefix / "nginx.conf"),
        "-g",
        directives,
    ]
    return program(
        "nginx", command, log=log_for("nginx"), autostart=False, priority=900, stopwait=20
    )


def render_supervisor(
    topo: Topology, *, foreground: bool, mysql_dsn: str, private_mysql: bool
) -> Path:
    logs = topo.state / "logs"
    logs.mkdir(parents=True, exist_ok=True)

    def log_for(name: str) -> str:
        return "/dev/stdout" if foreground else str(logs / f"{name}.log")

    sections = _header(topo) + _shards(topo, log_for)
    if private_mysql:
        command = [which("mariadbd"), *mariadb_args(topo)]
        sections.append(
            program(
                "mariadb", command, log=log_for("mariadb"), autostart=True, priority=10, stopwait=60
            )
        )
    sections.append(_worksim(topo, log_for))
    sections += _services(topo, mysql_dsn, log_for)
    sections.append(_nginx(topo, log_for))
    exporter_dsn = mysql_dsn if not private_mysql else topo.private_mysql_dsn(user="exporter")
    sections += exporters.programs(topo, exporter_dsn, log_for)
    topo.supervisor_conf.write_text("\n".join(sections))
    topo.supervisor_conf.chmod(0o600)
    return topo.supervisor_conf
