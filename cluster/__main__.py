"""The local cluster, run by supervisord: `python -m cluster run|up|down|status|clean|ctl ...`.

run     everything in the foreground, logs on stdout; Ctrl-C stops it all gracefully
up      the same, detached; returns once every service answers /readyz
down    graceful stop of what `up` started (SIGTERM: services flush their buffers)
status  supervisord's view of every process
clean   down, then delete all local state (.run/: data, logs, secrets)
ctl     any supervisorctl command, e.g. `ctl stop counter_1`
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import redis

from cluster import mariadb
from cluster.gateway import render_nginx
from cluster.prometheus_targets import render_prometheus
from cluster.supervisord import render_supervisor
from cluster.topology import ClusterSettings, Topology
from services.common import description, migrations


def say(message: str) -> None:
    print(f"\033[1m[cluster]\033[0m {message}", flush=True)


def _bin(name: str) -> str:
    return str(Path(sys.executable).parent / name)


def supervisor_pid(topo: Topology) -> int | None:
    try:
        pid = int(topo.supervisor_pidfile.read_text().strip())
        os.kill(pid, 0)
    except (FileNotFoundError, ValueError, ProcessLookupError):
        return None
    return pid


def ctl(topo: Topology, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [_bin("supervisorctl"), "-c", str(topo.supervisor_conf), *args],
        capture_output=True,
        text=True,
        check=False,
    )
    if check and result.returncode not in (0, 3):  # 3: some process is not running (status)
        raise SystemExit(f"supervisorctl {' '.join(args)} failed:\n{result.stdout}{result.stderr}")
    return result


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def prepare(topo: Topology, *, foreground: bool) -> tuple[str, bool]:
    """Write every config; returns the MySQL DSN and whether it is the private server."""
    if supervisor_pid(topo):
        raise SystemExit(f"the cluster in {topo.state} is already running (make down first)")
    topo.state.mkdir(parents=True, exist_ok=True)
    external = os.environ.get("MYSQL_DSN")
    private = not (external and mariadb.reachable(external))
    if external and private:
        say("MYSQL_DSN is set but not reachable; starting a private MariaDB instead")
    busy = [port for port in topo.listen_ports(private_mysql=private) if not _port_free(port)]
    if busy:
        raise SystemExit(f"ports already in use: {busy} (another cluster? set QUARTET_PORT_OFFSET)")
    if private:
        mariadb.initialise(topo)
    dsn = topo.private_mysql_dsn() if private else str(external)
    for instance in topo.instances:
        (topo.state / "metrics" / instance.name).mkdir(parents=True, exist_ok=True)
    render_nginx(topo)
    render_prometheus(topo)
    render_supervisor(topo, foreground=foreground, mysql_dsn=dsn, private_mysql=private)
    return dsn, private


def _wait(what: str, probe: object, timeout_s: float) -> None:
    assert callable(probe)
    deadline = time.monotonic() + timeout_s
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            if probe():
                return
        except Exception as exc:  # noqa: BLE001 - any failure means "not yet"
            last = exc
        time.sleep(0.25)
    raise SystemExit(f"{what} did not become ready in {timeout_s:g}s ({last!r})")


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - loopback URL
            return bool(response.status == 200)
    except urllib.error.URLError:
        return False


def orchestrate(topo: Topology, dsn: str, private: bool) -> None:
    timeout_s = topo.settings.READY_TIMEOUT_S
    for name, port in zip(topo.shard_names, topo.redis_ports, strict=True):
        client = redis.Redis(host="127.0.0.1", port=port, socket_timeout=1)
        _wait(f"redis shard {name}", client.ping, timeout_s)
        client.close()
    if private:
        mariadb.provision(topo, timeout_s)
    say("applying migrations")
    asyncio.run(migrations.run([s.name for s in description.SERVICES if s.mysql], dsn))
    seed_demo_data(topo, dsn)
    for spec in description.SERVICES:
        ctl(topo, "start", f"{spec.name}:*")
    for instance in topo.instances:
        _wait(
            instance.name,
            lambda i=instance: _http_ok(f"http://127.0.0.1:{i.port}/readyz"),
            timeout_s,
        )
    ctl(topo, "start", "nginx")
    _wait("gateway", lambda: _http_ok(f"{topo.gateway_url}/gateway/health"), timeout_s)
    ctl(topo, "start", "nginx_exporter")


def seed_demo_data(topo: Topology, dsn: str) -> None:
    """The banner dataset ($BANNER_DATA_DIR, else the generated demo set) and the demo recommender
    events: the same idempotent step the container deployments run as a one-shot job."""
    users = str(topo.settings.RECOMMENDER_USERS)
    command = [sys.executable, "-m", "services.demo_data"]
    for directory in topo.banner_data():
        command += ["--banner-dir", str(directory)]
    env = {**os.environ, "MYSQL_DSN": dsn, "REDIS_SHARDS": topo.redis_shards}
    subprocess.run([*command, "--users", users], env=env, check=True)


def summary(topo: Topology, private: bool, foreground: bool) -> None:
    rows = [
        ("gateway", f"{topo.gateway_url}  (public)"),
        ("gateway, internal", f"http://127.0.0.1:{topo.internal_port}  (loopback, no limits)"),
        *((i.name, f"http://127.0.0.1:{i.port}") for i in topo.instances),
        (
            "worksim",
            f"http://127.0.0.1:{topo.worksim_port}  (the aggregator's test-double upstream)",
        ),
        *(
            (n, f"redis://127.0.0.1:{p}")
            for n, p in zip(topo.shard_names, topo.redis_ports, strict=True)
        ),
        ("mysql", f"127.0.0.1:{topo.mysql_port} (private MariaDB)" if private else "$MYSQL_DSN"),
        (
            "admin token",
            str(topo.secrets_dir / "admin_token")
            if not os.environ.get("ADMIN_TOKEN")
            else "$ADMIN_TOKEN",
        ),
        ("logs", "this terminal" if foreground else str(topo.state / "logs")),
    ]
    width = max(len(name) for name, _ in rows)
    say("Quartet is up:\n" + "\n".join(f"  {name:<{width}}  {where}" for name, where in rows))


def _stop_supervisor(topo: Topology, timeout_s: float = 90) -> None:
    pid = supervisor_pid(topo)
    if pid is None:
        return
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while supervisor_pid(topo) is not None and time.monotonic() < deadline:
        time.sleep(0.2)


def cmd_up(topo: Topology) -> None:
    dsn, private = prepare(topo, foreground=False)
    say(f"starting supervisord ({topo.supervisor_conf})")
    subprocess.run([_bin("supervisord"), "-c", str(topo.supervisor_conf)], check=True)
    try:
        orchestrate(topo, dsn, private)
    except BaseException:
        say("start failed; stopping what was started (logs in .run/logs/)")
        _stop_supervisor(topo)
        raise
    summary(topo, private, foreground=False)


def cmd_run(topo: Topology) -> None:
    dsn, private = prepare(topo, foreground=True)
    # Own session: the terminal's Ctrl-C reaches this process only, which then stops everything
    # with SIGTERM (gunicorn treats SIGINT as a quick, unflushed exit).
    proc = subprocess.Popen(
        [_bin("supervisord"), "-n", "-c", str(topo.supervisor_conf)], start_new_session=True
    )

    def stop(*_: object) -> None:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        say("stopping (services flush their buffers first)")
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    try:
        orchestrate(topo, dsn, private)
        summary(topo, private, foreground=True)
        say("Ctrl-C stops the cluster")
    except SystemExit as exc:
        say(str(exc))
        stop()
    proc.wait()
    say("stopped")


def cmd_down(topo: Topology) -> None:
    if supervisor_pid(topo) is None:
        say("nothing is running")
        return
    say("stopping the cluster (services flush their buffers first)")
    _stop_supervisor(topo)
    say("stopped")


def cmd_clean(topo: Topology) -> None:
    cmd_down(topo)
    if topo.state.exists():
        shutil.rmtree(topo.state)
        say(f"removed {topo.state}")


def main() -> None:
    args = sys.argv[1:]
    if not args or args[0] in {"-h", "--help"}:
        print(__doc__)
        return
    topo = Topology(ClusterSettings())
    command = args[0]
    if command == "run":
        cmd_run(topo)
    elif command == "up":
        cmd_up(topo)
    elif command == "down":
        cmd_down(topo)
    elif command == "clean":
        cmd_clean(topo)
    elif command == "status":
        print(ctl(topo, "status", check=False).stdout, end="")
    elif command == "ctl":
        result = ctl(topo, *args[1:], check=False)
        print(result.stdout, end="")
        sys.exit(result.returncode)
    else:
        raise SystemExit(f"unknown command {command!r}; see `python -m cluster --help`")


if __name__ == "__main__":
    main()
