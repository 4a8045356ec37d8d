"""The containers, run for real against the test cluster. As processes on the host: the gateway's
start script assembles and renders nginx/ into a gateway that serves (in compose's layout and in
the flat ConfigMap layout of Kubernetes), and MariaDB's init script makes an exporter account that
works. In Docker, from the image `make image` builds: a counter container (host network, read-only
root) serves, reports healthy through the image's HEALTHCHECK and, on `docker stop`, flushes every
visit it acknowledged; and the gateway container, started by the same script, on a user-defined
network with the service containers under their compose names, serves requests to them."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.parse
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pymysql
import pytest

from cluster.service_env import service_env
from services.common.description import SERVICES, names
from services.common.ring import ShardRing
from services.counter.pages import visits_key
from tests.support import docker
from tests.support.cluster import RunningCluster
from tests.support.datasets import REPO
from tests.support.forwarding import forward
from tests.support.processes import free_port

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
    for spec in SERVICES:
        env[spec.servers_var] = " ".join(
            f"server 127.0.0.1:{i.port};" for i in cluster.topo.instances_of(spec.name)
        )
    return env


def _layout(root: Path, flat: bool) -> None:
    source = root / "src"
    if not flat:  # docker compose: the nginx/ directory, bind-mounted
        shutil.copytree(REPO / "nginx", source / "nginx")
        return
    # Kubernetes: one flat ConfigMap per directory, mounted side by side.
    (source / "nginx").mkdir(parents=True)
    for entry in (REPO / "nginx").iterdir():
        if entry.is_file():
            shutil.copy(entry, source / "nginx")
    for sub, mount in (("gateway", "gateway"), ("api", "api"), ("_errors", "errors")):
        shutil.copytree(REPO / "nginx" / sub, source / f"nginx-{mount}")


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
            page = client.get(f"/campaigns/{cluster.generated_banners.busy_campaign}")
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


def test_the_mariadb_init_script_makes_a_working_exporter_account(cluster: RunningCluster) -> None:
    user, password = "exporter_init_test", "it's-a-test-password"
    socket = str(cluster.topo.mysql_socket)
    # The MariaDB image's entrypoint sources the script with this helper defined.
    shell = (
        f'docker_process_sql() {{ mariadb --no-defaults --socket="{socket}" -u"$(id -un)"; }}; '
        f'. "{REPO / "mariadb" / "initdb" / "10-exporter-user.sh"}"'
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


# --- in Docker -------------------------------------------------------------------------------

DRAIN_VISITS = 1000
# The image's HEALTHCHECK command, polled every second instead of every 10 s.
FAST_HEALTH = ["--health-interval", "1s", "--health-timeout", "3s"]


@pytest.fixture(scope="module")
def image() -> str:
    return docker.service_image()


def _service_env(cluster: RunningCluster, service: str, **overrides: str) -> dict[str, str]:
    """An instance's environment against the test cluster, as the image runs it."""
    env = {"QUARTET_SERVICE": service, "ENVIRONMENT": "test", "WEB_CONCURRENCY": "1"}
    if service != "worksim":
        env.update(
            service_env(cluster.topo, cluster.topo.instances_of(service)[0], cluster.mysql_dsn)
        )
        env[f"{service.upper()}_MIGRATE_ON_START"] = "false"
    env.update(PROMETHEUS_MULTIPROC_DIR=docker.METRICS_DIR, PORT="8000")
    env.update(overrides)
    return env


def _images_mount(env: dict[str, str]) -> list[str]:
    images = env.get("BANNER_IMAGES_DIR")
    return ["--volume", f"{images}:{images}:ro"] if images and Path(images).is_dir() else []


def _shard_count(cluster: RunningCluster, page: str) -> int | None:
    shard = ShardRing(cluster.topo.shard_names).shard_for(page)
    value = cluster.redis(shard).get(visits_key(page))
    return None if value is None else int(value)


def test_a_counter_container_serves_is_healthy_and_drains_on_stop(
    image: str, cluster: RunningCluster
) -> None:
    port = free_port()
    # Batched acks and a 30 s flush interval: every visit sits in the buffer until the stop.
    env = _service_env(
        cluster,
        "counter",
        PORT=str(port),
        WEB_CONCURRENCY="2",
        COUNTER_ACK="batch",
        COUNTER_FLUSH_INTERVAL_S="30",
    )
    options = [*docker.HARDENED, "--network", "host", *FAST_HEALTH, "--stop-timeout", "45"]
    page = f"container-drain-{uuid.uuid4().hex[:8]}"
    with docker.container(image, options=options, env=env) as container_id:
        docker.wait_healthy(container_id, timeout_s=60)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5) as client:
            for _ in range(DRAIN_VISITS):
                posted = client.post(f"/visits/{page}")
                assert posted.status_code == 200, posted.text
            read = client.get(f"/visits/{page}")
            assert read.status_code == 200
            # Two workers, each answering from its own buffer: at most what was acknowledged.
            assert 0 < read.json()["visits"] <= DRAIN_VISITS
        assert _shard_count(cluster, page) is None, "flushed before the stop: nothing is proven"
        started = time.monotonic()
        docker.docker("stop", container_id, timeout_s=90)
        assert time.monotonic() - started < 40, "the stop waited for the kill, not for the drain"
        assert docker.state(container_id)["ExitCode"] == 0
    assert _shard_count(cluster, page) == DRAIN_VISITS
    daily = httpx.get(f"{cluster.instance_url('counter_1')}/visits/{page}/daily?days=1", timeout=5)
    assert daily.json()["total"] == DRAIN_VISITS  # the MySQL ledger too


def _a_campaign(cluster: RunningCluster) -> int:
    """A campaign the test cluster's dataset has (whichever dataset it ingested)."""
    dsn = urllib.parse.urlsplit(cluster.mysql_dsn)
    conn = pymysql.connect(
        host="127.0.0.1",
        port=cluster.topo.mysql_port,
        user=dsn.username,
        password=urllib.parse.unquote(dsn.password or ""),
        database=dsn.path.lstrip("/"),
    )
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT MIN(campaign_id) FROM banner_sets")
            row = cur.fetchone()
    finally:
        conn.close()
    assert row is not None
    assert row[0] is not None, "the test cluster has no banner sets"
    return int(row[0])


def _ip_on(container_id: str, network_name: str) -> str:
    networks = docker.inspect("container", container_id)["NetworkSettings"]["Networks"]
    return str(networks[network_name]["IPAddress"])


def test_the_gateway_container_serves_the_service_containers(
    image: str, cluster: RunningCluster
) -> None:
    with docker.network() as net, contextlib.ExitStack() as stack:
        # The containers reach the test cluster's shards and MariaDB through forwarders on the
        # host's address on this network (the cluster listens on loopback only).
        host = docker.network_gateway(net)
        shards = ",".join(
            f"{name}=redis://{host}:{stack.enter_context(forward(host, port))}"
            for name, port in zip(cluster.topo.shard_names, cluster.topo.redis_ports, strict=True)
        )
        mysql = stack.enter_context(forward(host, cluster.topo.mysql_port))
        dsn = cluster.mysql_dsn.replace(f"127.0.0.1:{cluster.topo.mysql_port}", f"{host}:{mysql}")
        # compose's environment: the peers and the upstream by service name.
        per_service = {
            "worksim": {f"WORKSIM_P_{kind}": "0" for kind in ("500", "429", "INVALID", "HANG")},
            "counter": {"COUNTER_ACK": "commit"},
            "banner": {},
            "recommender": {},
            "aggregator": {
                "AGGREGATOR_UPSTREAM_URL": "http://worksim:8000/",
                "BANNER_URL": "http://banner:8000",
                "COUNTER_URL": "http://counter:8000",
                "RECOMMENDER_URL": "http://recommender:8000",
            },
        }
        services: dict[str, str] = {}
        for service, overrides in per_service.items():
            env = _service_env(cluster, service, REDIS_SHARDS=shards, MYSQL_DSN=dsn, **overrides)
            services[service] = stack.enter_context(
                docker.container(
                    image,
                    options=[*docker.HARDENED, *FAST_HEALTH, *_images_mount(env)],
                    env=env,
                    network_name=net,
                    aliases=[service],
                )
            )
        for container_id in services.values():
            docker.wait_healthy(container_id, timeout_s=90)
        # compose's gateway: the start script as entrypoint, nginx/ read-only, uid 101.
        gateway = stack.enter_context(
            docker.gateway_container(
                net,
                publish=[8080, 8081],
                # compose's gateway-metrics volume
                options=["--tmpfs", "/var/cache/nginx:uid=101,gid=101"],
                env={"METRICS_LOG": "/var/cache/nginx/metrics.log", "NGINX_WORKER_PROCESSES": "1"},
            )
        )
        public = f"http://127.0.0.1:{docker.published_port(gateway, 8080)}"
        internal = f"http://127.0.0.1:{docker.published_port(gateway, 8081)}"
        docker.wait_answering(gateway, f"{public}/gateway/health")

        # Compose's names are DNS names on the network, for the gateway and for the services.
        resolved = docker.docker("exec", gateway, "getent", "hosts", "counter").stdout.split()[0]
        assert resolved == _ip_on(services["counter"], net)
        lookup = "import socket; print(socket.gethostbyname('banner'))"
        asked = docker.docker("exec", services["aggregator"], "python", "-c", lookup)
        assert asked.stdout.strip() == _ip_on(services["banner"], net)

        page = f"container-gateway-{uuid.uuid4().hex[:8]}"
        with httpx.Client(base_url=public, timeout=10) as client:
            for _ in range(3):
                assert client.post(f"/visits/{page}").status_code == 200
            # The only counter the gateway reaches is the container, and it acks on commit.
            assert _shard_count(cluster, page) == 3
            assert client.get(f"/visits/{page}").json()["visits"] == 3
            campaign = client.get(f"/campaigns/{_a_campaign(cluster)}")
            assert campaign.status_code == 200, campaign.text
            assert "text/html" in campaign.headers["content-type"]
            assert client.get("/recommend/42").status_code == 200
            fanned = client.get("/api/all", params={"timeout": 3000})
            assert fanned.status_code == 200, fanned.text
            missing = client.get("/nowhere")
            assert missing.status_code == 404
            assert missing.json()["status"] == 404
            assert client.get("/_ping/counter").status_code == 404  # internal listener only
        with httpx.Client(base_url=internal, timeout=5) as client:
            for service in names():
                assert client.get(f"/_ping/{service}").status_code == 200, service
            assert "Active connections" in client.get("/_status").text
