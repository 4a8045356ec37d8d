"""The containers' entry points, run here for real against the test cluster: no Docker engine is
needed to prove that the gateway's start script assembles and renders nginx/ into a gateway that
serves (in compose's layout and in the flat ConfigMap layout of Kubernetes), that the image's
bare gunicorn command serves a service and stops cleanly, and that MariaDB's init script makes an
exporter account that works."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pymysql
import pytest

from cluster.render import service_env
from tests.support.cluster import RunningCluster
from tests.support.processes import free_port

ROOT = Path(__file__).resolve().parents[2]
PATH = "/usr/sbin:/usr/bin:/bin"


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A directory nginx's unprivileged workers can read when the tests run as root (pytest's
    own temporary directories are private to their owner)."""
    path = Path(tempfile.mkdtemp(prefix="quartet-container-"))
    path.chmod(0o777)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _wait_http(url: str, process: subprocess.Popen[bytes], timeout_s: float = 20) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        assert process.poll() is None, "the process exited early"
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, f"{url} did not answer"
        time.sleep(0.2)


def _stop(process: subprocess.Popen[bytes]) -> int:
    os.killpg(process.pid, signal.SIGTERM)
    try:
        return process.wait(timeout=40)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)


def _gateway_env(cluster: RunningCluster, root: Path, public: int, internal: int) -> dict[str, str]:
    env = {
        "PATH": PATH,
        "NGINX_SOURCE": str(root / "src" / "nginx"),
        "NGINX_PREFIX": str(root / "prefix"),
        "GATEWAY_LISTEN": f"127.0.0.1:{public}",
        "INTERNAL_LISTEN": f"127.0.0.1:{internal}",
        "METRICS_LOG": str(root / "log" / "metrics.log"),
        "TRUSTED_PROXIES": "10.0.0.0/8",
    }
    # In a container the servers are `<service>:8000`; here, the test cluster's instances.
    for service in ("counter", "banner", "recommender", "aggregator"):
        env[f"{service.upper()}_SERVERS"] = " ".join(
            f"server 127.0.0.1:{i.port};" for i in cluster.topo.instances_of(service)
        )
    return env


def _layout(root: Path, flat: bool) -> None:
    source = root / "src"
    if not flat:  # docker compose: the nginx/ directory, bind-mounted
        shutil.copytree(ROOT / "nginx", source / "nginx")
        return
    # Kubernetes: one flat ConfigMap per directory, mounted side by side.
    (source / "nginx").mkdir(parents=True)
    for entry in (ROOT / "nginx").iterdir():
        if entry.is_file():
            shutil.copy(entry, source / "nginx")
    for sub, mount in (("gateway", "gateway"), ("api", "api"), ("_errors", "errors")):
        shutil.copytree(ROOT / "nginx" / sub, source / f"nginx-{mount}")


@pytest.mark.parametrize("flat", [False, True], ids=["compose-layout", "configmap-layout"])
def test_the_container_gateway_serves_the_cluster(
    cluster: RunningCluster, shared_dir: Path, flat: bool
) -> None:
    _layout(shared_dir, flat)
    public, internal = free_port(), free_port()
    env = _gateway_env(cluster, shared_dir, public, internal)
    script = str(shared_dir / "src" / "nginx" / "container-start.sh")
    process = subprocess.Popen(["sh", script], env=env, start_new_session=True)
    try:
        _wait_http(f"http://127.0.0.1:{public}/gateway/health", process)
        with httpx.Client(base_url=f"http://127.0.0.1:{public}", timeout=5) as client:
            posted = client.post("/visits/container-gateway")
            assert posted.status_code == 200, posted.text
            assert client.get("/visits/container-gateway").status_code == 200
            page = client.get("/campaigns/1")
            assert page.status_code == 200
            assert "text/html" in page.headers["content-type"]
            assert client.get("/_ping/counter").status_code == 404  # internal listener only
            missing = client.get("/nowhere")
            assert missing.status_code == 404
            assert missing.json()["status"] == 404
        with httpx.Client(base_url=f"http://127.0.0.1:{internal}", timeout=5) as client:
            assert client.get("/_ping/counter").status_code == 200
            assert "Active connections" in client.get("/_status").text
        rendered = (shared_dir / "prefix" / "gateway" / "limits.conf").read_text()
        assert "set_real_ip_from 10.0.0.0/8;" in rendered
        assert not list((shared_dir / "prefix").rglob("*.template"))
        # The metrics lines are buffered for up to a second.
        deadline = time.monotonic() + 10
        metrics_log = shared_dir / "log" / "metrics.log"
        while '{"listener":"public","status":200}' not in metrics_log.read_text().splitlines():
            assert time.monotonic() < deadline, metrics_log.read_text()
            time.sleep(0.2)
    finally:
        assert _stop(process) == 0


def test_the_start_script_refuses_a_template_variable_nothing_sets(
    cluster: RunningCluster, shared_dir: Path
) -> None:
    _layout(shared_dir, flat=False)
    (shared_dir / "src" / "nginx" / "gateway" / "extra.conf.template").write_text(
        "# ${UNHEARD_OF}\n"
    )
    env = _gateway_env(cluster, shared_dir, free_port(), free_port())
    script = str(shared_dir / "src" / "nginx" / "container-start.sh")
    result = subprocess.run(["sh", script], env=env, capture_output=True, text=True, timeout=30)
    assert result.returncode == 1
    assert "UNHEARD_OF" in result.stderr


def test_the_image_command_serves_a_service_and_stops_gracefully(
    cluster: RunningCluster, tmp_path: Path
) -> None:
    instance = cluster.topo.instances_of("counter")[0]
    port = free_port()
    env = {
        **service_env(cluster.topo, instance, cluster.mysql_dsn),
        "PATH": f"{Path(sys.executable).parent}:{PATH}",
        "QUARTET_SERVICE": "counter",
        "PORT": str(port),
        "WEB_CONCURRENCY": "1",
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics"),
        "COUNTER_MIGRATE_ON_START": "false",
    }
    # The image's ENTRYPOINT, with no arguments, from the directory the image's code is in.
    command = ["gunicorn", "-c", "python:services.common.gunicorn_conf"]
    process = subprocess.Popen(command, env=env, cwd=ROOT, start_new_session=True)
    try:
        _wait_http(f"http://127.0.0.1:{port}/readyz", process)
        assert httpx.post(f"http://127.0.0.1:{port}/visits/image-cmd").status_code == 200
        probe = [sys.executable, "-m", "services.common.probe", "/readyz"]
        assert subprocess.run(probe, env=env, cwd=ROOT, check=False).returncode == 0
        down = {**env, "PORT": str(free_port())}
        assert subprocess.run(probe, env=down, cwd=ROOT, check=False).returncode == 1
    finally:
        assert _stop(process) == 0


def test_the_mariadb_init_script_makes_a_working_exporter_account(cluster: RunningCluster) -> None:
    user, password = "exporter_init_test", "it's-a-test-password"
    socket = str(cluster.topo.mysql_socket)
    # The MariaDB image's entrypoint sources the script with this helper defined.
    shell = (
        f'docker_process_sql() {{ mariadb --no-defaults --socket="{socket}" -u"$(id -un)"; }}; '
        f'. "{ROOT / "mariadb" / "initdb" / "10-exporter-user.sh"}"'
    )
    env = {"PATH": PATH, "MYSQL_EXPORTER_USER": user, "MYSQL_EXPORTER_PASSWORD": password}
    subprocess.run(["bash", "-c", shell], env=env, check=True, timeout=30)
    try:
        conn = pymysql.connect(
            host="127.0.0.1", port=cluster.topo.mysql_port, user=user, password=password
        )
        with conn.cursor() as cur:
            cur.execute("SHOW GLOBAL STATUS LIKE 'Uptime'")
            assert cur.fetchone() is not None
            cur.execute("SELECT COUNT(*) FROM performance_schema.global_status")
            with pytest.raises(pymysql.err.OperationalError):
                cur.execute("SELECT * FROM quartet.schema_migrations")
        conn.close()
    finally:
        drop = f"mariadb --no-defaults --socket={socket} -u$(id -un) -e \"DROP USER '{user}'@'%'\""
        subprocess.run(["bash", "-c", drop], check=False)
