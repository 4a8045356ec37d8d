"""Adding a service is one entry in services/common/description.py plus its code.

With one more entry ("ledger") every generator emits its part: the gateway's upstream, routes,
admin routes and ping, the local cluster's supervisord group, environment and Prometheus targets,
its Kubernetes manifest and Prometheus jobs. What no generator can write, the hand-written pieces
a new service still needs, is listed by `missing_pieces()`: empty for every described service,
and, for a newcomer's entry, a list of what to add, by name. Pure: no cluster.
"""

from __future__ import annotations

import re
import shutil
import sys
from pathlib import Path
from types import ModuleType

import pytest
import yaml

from cluster import gateway, gateway_files, generate, prometheus_targets, supervisord
from cluster.topology import ClusterSettings, Topology
from services.common import description
from services.common.description import Route, Service

ROOT = Path(__file__).resolve().parents[2]
LEDGER = Service(
    "ledger",
    "a service a test adds",
    local_port=8150,
    routes=(Route("/ledger/"), Route("~ ^/ledger/[^/]+/close$", admin=True)),
    redis=True,
    mysql=True,
    resources=description.SERVICES[0].resources,
    secrets=("LEDGER_SIGNING_KEY",),
    peers=("counter",),
)


@pytest.fixture
def with_ledger(monkeypatch: pytest.MonkeyPatch) -> tuple[Service, ...]:
    """The description with LEDGER added: in the description module, and in every loaded module
    that imported its SERVICES by name (the others read description.SERVICES when they run)."""
    original = description.SERVICES
    extended = (*original, LEDGER)
    runnable = (*extended, description.WORKSIM)
    for module in list(sys.modules.values()):
        if not isinstance(module, ModuleType):
            continue
        if vars(module).get("SERVICES") is original:
            monkeypatch.setattr(module, "SERVICES", extended)
        if vars(module).get("RUNNABLE") is description.RUNNABLE:
            monkeypatch.setattr(module, "RUNNABLE", runnable)
    assert description.names()[-1] == "ledger"
    return extended


# --- generated: the entry is enough ---------------------------------------------------------------


def test_the_gateway_files_route_a_new_service(with_ledger: tuple[Service, ...]) -> None:
    files = gateway_files.generated()
    assert "location /ledger/ {\n    proxy_pass http://ledger;\n}" in files["nginx/api/ledger.conf"]
    assert "close" not in files["nginx/api/ledger.conf"]  # its admin route is not public
    assert re.search(
        r"^upstream ledger \{\n[^}]*\$\{LEDGER_SERVERS\}",
        files["nginx/upstreams.conf.template"],
        re.M,
    )
    admin = "location ~ ^/ledger/[^/]+/close$ {\n    "
    assert admin + "proxy_pass http://ledger;" in files["nginx/gateway/admin.conf"]
    assert admin + "return 404;" in files["nginx/gateway/admin-closed.conf"]
    assert (
        "location = /_ping/ledger { proxy_pass http://ledger/ping; }"
        in (files["nginx/gateway/internal.conf"])
    )
    assert "- api/ledger.conf" in files["nginx/kustomization.yaml"]


def test_the_local_cluster_runs_a_new_service(
    with_ledger: tuple[Service, ...], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The programs' paths do not matter here (and need not be installed).
    for module in (supervisord, sys.modules["cluster.exporters"]):
        monkeypatch.setattr(module, "which", lambda name: f"/usr/bin/{name}")
    topo = Topology(ClusterSettings(STATE_DIR=tmp_path / "state", PORT_OFFSET=13300))
    ports = [i.port for i in topo.instances_of("ledger")]
    assert ports == [8150 + 13300, 8151 + 13300]
    assert set(ports) <= set(topo.listen_ports(private_mysql=True))

    conf = supervisord.render_supervisor(
        topo, foreground=False, mysql_dsn="mysql://u:p@127.0.0.1:1/quartet", private_mysql=False
    ).read_text()
    assert "[group:ledger]\nprograms=ledger_1,ledger_2\n" in conf
    program = conf.split("[program:ledger_1]\n", 1)[1].split("\n[", 1)[0]
    assert f"--bind 127.0.0.1:{ports[0]} services.ledger.app:app" in program
    environment = program.split("environment=", 1)[1]
    for variable in ("LEDGER_SIGNING_KEY=", "COUNTER_URL=", "MYSQL_DSN=", "REDIS_SHARDS="):
        assert variable in environment

    # The gateway: the generated files plus the local values, through the one renderer.
    prefix = tmp_path / "nginx"
    shutil.copytree(ROOT / "nginx", prefix)
    for path, text in gateway_files.generated().items():
        (prefix / path.removeprefix("nginx/")).write_text(text)
    gateway.render(prefix, gateway.values(topo))
    upstreams = (prefix / "upstreams.conf").read_text()
    ledger = upstreams.split("upstream ledger {", 1)[1].split("}", 1)[0]
    assert [f"server 127.0.0.1:{port}" in ledger for port in ports] == [True, True]

    targets = prometheus_targets.render_prometheus(topo) / "targets" / "ledger.json"
    assert yaml.safe_load(targets.read_text()) == [
        {"targets": [f"127.0.0.1:{port}" for port in ports]}
    ]


def test_the_deployments_and_monitoring_carry_a_new_service(
    with_ledger: tuple[Service, ...],
) -> None:
    present = generate.generators()
    files = generate.files()
    if "cluster.manifests" in present:
        manifest = list(yaml.safe_load_all(files["k8s/base/ledger.yaml"]))
        assert {d["metadata"]["name"] for d in manifest} >= {"ledger"}
        assert "- ledger.yaml" in files["k8s/base/kustomization.yaml"]
    if "cluster.monitoring_config" in present:
        for config in ("prometheus/prometheus.yml", "prometheus/compose.yml"):
            jobs = [j["job_name"] for j in yaml.safe_load(files[config])["scrape_configs"]]
            assert "ledger" in jobs, config
        assert re.search(r'job=~"[^"]*\bledger\b', files["prometheus/rules/alerts.yml"])


# --- hand-written: what a newcomer must still add ---------------------------------------------


def missing_pieces(spec: Service, root: Path = ROOT) -> list[str]:
    """What a described service lacks that no generator writes, each as an instruction."""
    package = root / "services" / spec.name
    missing = [
        f"services/{spec.name}/{module}: {why}"
        for module, why in (
            ("__init__.py", "the package"),
            ("app.py", "`app = create_app(...)` with its lifespan (gunicorn runs spec.app)"),
            ("api.py", "the routes, each calling the service's domain object"),
            ("settings.py", "one settings class"),
        )
        if not (package / module).is_file()
    ]
    settings = package / "settings.py"
    if settings.is_file() and f'env_prefix="{spec.env_prefix}"' not in settings.read_text():
        missing.append(f'services/{spec.name}/settings.py: env_prefix="{spec.env_prefix}"')
    migrations = sorted((package / "migrations").glob("*.sql"))
    if spec.mysql and not migrations:
        missing.append(f"services/{spec.name}/migrations/001_*.sql: its schema (mysql=True)")
    if not spec.mysql and migrations:
        missing.append(f"services/{spec.name}/migrations/: remove, or set mysql=True")
    if not list((root / "tests" / spec.name).glob("test_*.py")):
        missing.append(f"tests/{spec.name}/test_*.py: its tests, one end to end through nginx")
    if not (root / "docs" / f"{spec.name}.md").is_file():
        missing.append(f"docs/{spec.name}.md: its contract (routes, errors, settings)")
    compose = yaml.safe_load((root / "docker-compose.yml").read_text())["services"]
    if spec.name not in compose:
        missing.append(f"docker-compose.yml: a `{spec.name}` service on the shared image")
    return missing


@pytest.mark.parametrize("spec", description.SERVICES, ids=lambda spec: spec.name)
def test_every_described_service_has_its_hand_written_pieces(spec: Service) -> None:
    missing = missing_pieces(spec)
    assert missing == [], f"{spec.name} is described but lacks:\n  " + "\n  ".join(missing)


def test_a_new_entry_is_told_what_to_add() -> None:
    missing = missing_pieces(LEDGER)
    for piece in (
        "services/ledger/app.py",
        "services/ledger/api.py",
        "services/ledger/settings.py",
        "services/ledger/migrations/",
        "tests/ledger/",
        "docs/ledger.md",
        "docker-compose.yml",
    ):
        assert any(line.startswith(piece) for line in missing), (piece, missing)
