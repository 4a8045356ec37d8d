"""Writes the local cluster's configuration under the state directory: supervisord's programs and
the gateway's nginx files (the repository's nginx/ with its templates filled in)."""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
from collections.abc import Callable, Mapping
from pathlib import Path

from cluster.topology import ROOT, SERVICES, WORKSIM_DEFAULTS, Instance, Topology, which
from services.common.mysql import MysqlTarget

_PLACEHOLDER = re.compile(r"\$\{([A-Z][A-Z0-9_]*)\}")
# Variables passed through from the caller's environment to every service.
_PASSTHROUGH = ("LOG_LEVEL", "ENVIRONMENT")


def fill(template: str, values: Mapping[str, str]) -> str:
    """Replace ${NAME} (upper case only: nginx's own $variables stay) and refuse unknown names."""

    def one(match: re.Match[str]) -> str:
        name = match[1]
        if name not in values:
            raise KeyError(f"template needs ${{{name}}}, which the cluster does not define")
        return values[name]

    return _PLACEHOLDER.sub(one, template)


def admin_routes(public: bool) -> str:
    """What the public listener includes for the admin routes (container-start.sh says the same)."""
    return "gateway/admin.conf" if public else "gateway/admin-closed.conf"


def render_nginx(topo: Topology) -> Path:
    target = topo.state / "nginx"
    if target.exists():
        # Keep only runtime state (temp dirs); configuration is rewritten from the repository.
        for child in target.iterdir():
            if child.name not in {"tmp", "logs"}:
                shutil.rmtree(child) if child.is_dir() else child.unlink()
    shutil.copytree(ROOT / "nginx", target, dirs_exist_ok=True)
    (target / "tmp").mkdir(exist_ok=True)
    (target / "logs").mkdir(exist_ok=True)
    (target / "logs" / "metrics.log").touch()  # mtail follows it from the start
    settings = topo.settings
    values = {
        "GATEWAY_LISTEN": f"127.0.0.1:{topo.gateway_port}",
        "INTERNAL_LISTEN": f"127.0.0.1:{topo.internal_port}",
        "METRICS_LOG": "logs/metrics.log",
        "GATEWAY_RATE": settings.GATEWAY_RATE,
        "GATEWAY_BURST": str(settings.GATEWAY_BURST),
        "GATEWAY_CLAIM_RATE": settings.GATEWAY_CLAIM_RATE,
        "GATEWAY_CLAIM_BURST": str(settings.GATEWAY_CLAIM_BURST),
        "GATEWAY_ADMIN_ROUTES": admin_routes(settings.GATEWAY_PUBLIC_ADMIN),
        "GATEWAY_CONN": str(settings.GATEWAY_CONN),
        "TRUSTED_PROXIES": "\n".join(
            f"set_real_ip_from {cidr};" for cidr in settings.TRUSTED_PROXIES.split(",") if cidr
        ),
    }
    for spec in SERVICES:
        values[f"{spec.name.upper()}_SERVERS"] = "\n    ".join(
            f"server 127.0.0.1:{i.port} max_fails=3 fail_timeout=5s;"
            for i in topo.instances_of(spec.name)
        )
    for template in target.rglob("*.template"):
        template.with_suffix("").write_text(fill(template.read_text(), values))
        template.unlink()
    return target


def render_prometheus(topo: Topology) -> Path:
    """The repository's prometheus/ with this cluster's targets (file_sd) beside it."""
    target = topo.state / "prometheus"
    for child in ("rules", "tests", "mtail", "targets"):
        shutil.rmtree(target / child, ignore_errors=True)
    shutil.copytree(ROOT / "prometheus", target, dirs_exist_ok=True)
    targets = target / "targets"
    targets.mkdir(exist_ok=True)

    def write(job: str, groups: list[dict[str, object]]) -> None:
        (targets / f"{job}.json").write_text(json.dumps(groups, indent=1))

    for spec in SERVICES:
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


def _monitoring(topo: Topology, mysql_dsn: str, log_for: Callable[[str], str]) -> list[str]:
    """Prometheus and the exporters (Debian's packages), as supervisord programs."""
    state = topo.state
    mysql = MysqlTarget.from_dsn(mysql_dsn)
    programs = [
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
        _program(
            name,
            command,
            log=log_for(name),
            autostart=name != "nginx_exporter",
            priority=950,
            stopwait=15,
            env=env,
        )
        for name, command, env in programs
    ]


def service_env(topo: Topology, instance: Instance, mysql_dsn: str) -> dict[str, str]:
    prefix = instance.service.upper() + "_"
    env = {
        key: value
        for key, value in os.environ.items()
        if key.startswith(prefix) or key in _PASSTHROUGH
    }
    env.update(
        REDIS_SHARDS=topo.redis_shards,
        MYSQL_DSN=mysql_dsn,
        ADMIN_TOKEN=topo.admin_token(),
        WEB_CONCURRENCY=str(topo.settings.WORKERS),
        PROMETHEUS_MULTIPROC_DIR=str(topo.state / "metrics" / instance.name),
        PYTHONUNBUFFERED="1",
    )
    env.setdefault("ENVIRONMENT", "development")
    spec = next(s for s in SERVICES if s.name == instance.service)
    for name in spec.secrets:
        env[name] = os.environ.get(name) or topo.secret(name.lower())
    if instance.service == "banner":
        env["BANNER_IMAGES_DIR"] = os.pathsep.join(str(d / "images") for d in topo.banner_data())
    if instance.service == "aggregator":
        env.setdefault("AGGREGATOR_UPSTREAM_URL", f"http://127.0.0.1:{topo.worksim_port}/")
        # Peers through the gateway's internal listener: nginx balances over their instances.
        for peer in ("BANNER_URL", "COUNTER_URL", "RECOMMENDER_URL"):
            env[peer] = os.environ.get(peer) or f"http://127.0.0.1:{topo.internal_port}"
    return env


def _program(
    name: str,
    command: list[str],
    *,
    log: str,
    autostart: bool,
    priority: int,
    stopwait: int,
    env: Mapping[str, str] | None = None,
) -> str:
    lines = [
        f"[program:{name}]",
        "command=" + " ".join(_quote(part) for part in command),
        f"directory={ROOT}",
        f"autostart={'true' if autostart else 'false'}",
        "autorestart=true",
        "startsecs=1",
        "startretries=5",
        "stopsignal=TERM",
        f"stopwaitsecs={stopwait}",
        f"priority={priority}",
        "redirect_stderr=true",
        f"stdout_logfile={log}",
    ]
    if log == "/dev/stdout":
        lines.append("stdout_logfile_maxbytes=0")
    if env:
        lines.append("environment=" + ",".join(f'{k}="{_escape(v)}"' for k, v in env.items()))
    return "\n".join(lines) + "\n"


def _quote(part: str) -> str:
    return f'"{part}"' if " " in part or not part else _escape(part)


def _escape(value: str) -> str:
    # supervisord expands %(name)s in its values; a literal percent is doubled.
    return value.replace("%", "%%").replace('"', '\\"')


def render_supervisor(
    topo: Topology, *, foreground: bool, mysql_dsn: str, private_mysql: bool
) -> Path:
    state = topo.state
    logs = state / "logs"
    logs.mkdir(parents=True, exist_ok=True)

    def log_for(name: str) -> str:
        return "/dev/stdout" if foreground else str(logs / f"{name}.log")

    sections = [
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
    redis = which("redis-server")
    for name, port in zip(topo.shard_names, topo.redis_ports, strict=True):
        data = state / "redis" / name
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
            _program(name, command, log=log_for(name), autostart=True, priority=10, stopwait=30)
        )
    if private_mysql:
        command = [which("mariadbd"), *mariadb_args(topo)]
        sections.append(
            _program(
                "mariadb", command, log=log_for("mariadb"), autostart=True, priority=10, stopwait=60
            )
        )
    worksim_env = {
        **WORKSIM_DEFAULTS,
        **{k: v for k, v in os.environ.items() if k.startswith("WORKSIM_")},
    }
    command = [
        str(Path(sys.executable).parent / "uvicorn"),
        "services.worksim.app:app",
        "--host",
        "127.0.0.1",
        "--port",
        str(topo.worksim_port),
        "--no-access-log",
        "--log-level",
        "warning",
    ]
    sections.append(
        _program(
            "worksim",
            command,
            log=log_for("worksim"),
            autostart=True,
            priority=300,
            stopwait=10,
            env=worksim_env,
        )
    )
    gunicorn = str(Path(sys.executable).parent / "gunicorn")
    for spec in SERVICES:
        members = topo.instances_of(spec.name)
        for instance in members:
            command = [
                gunicorn,
                "-c",
                "python:services.common.gunicorn_conf",
                "--bind",
                f"127.0.0.1:{instance.port}",
                f"services.{spec.name}.app:app",
            ]
            sections.append(
                _program(
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
    nginx_prefix = state / "nginx"
    # As root, nginx's workers would switch to `nobody`, who may not be able to read a state
    # directory under a private home or a 0700 temp dir; locally they stay the invoking user.
    directives = "daemon off; worker_processes auto;" + (" user root;" if os.geteuid() == 0 else "")
    command = [
        which("nginx"),
        "-p",
        f"{nginx_prefix}/",
        "-c",
        str(nginx_prefix / "nginx.conf"),
        "-g",
        directives,
    ]
    sections.append(
        _program("nginx", command, log=log_for("nginx"), autostart=False, priority=900, stopwait=20)
    )
    exporter_dsn = mysql_dsn if not private_mysql else topo.private_mysql_dsn(user="exporter")
    sections += _monitoring(topo, exporter_dsn, log_for)
    topo.supervisor_conf.write_text("\n".join(sections))
    topo.supervisor_conf.chmod(0o600)
    return topo.supervisor_conf


def mariadb_args(topo: Topology) -> list[str]:
    data = topo.state / "mariadb"
    args = [
        "--no-defaults",
        f"--datadir={data / 'data'}",
        f"--socket={topo.mysql_socket}",
        f"--pid-file={data / 'mariadb.pid'}",
        f"--port={topo.mysql_port}",
        "--bind-address=127.0.0.1",
        "--skip-name-resolve",
        "--max-connections=300",
        "--innodb-buffer-pool-size=256M",
        "--innodb-flush-log-at-trx-commit=1",
        "--character-set-server=utf8mb4",
        "--collation-server=utf8mb4_unicode_ci",
    ]
    if os.geteuid() == 0:
        args.append("--user=root")
    return args
