"""The services' Kubernetes objects, generated from services/common/description.py.

Generated files, not a kustomize component: the four services differ in facts (name, resources,
MySQL or not, secrets, peers), and kustomize has no parameters. A component would need one
`replacements` entry per name occurrence and per service, plus patches for the env blocks, which
is more YAML than the manifests it replaces and hides each service's rendered shape. Here every
k8s/base/<service>.yaml is plain, reviewable YAML, rewritten by `python -m cluster.generate` and
held to the description by `--check` (and by tests/description/test_deployments.py).

What a single service needs beyond the shared shape stays a hand-written kustomize patch beside
the generated files (k8s/base/banner-images.yaml: the banner's images initContainer), and what
only the demo needs stays in k8s/components/demo (the aggregator's AGGREGATOR_UPSTREAM_URL).
k8s/base/kustomization.yaml keeps its comments; only its list of service files is a generated
region (cluster/generated_region.py). docs/deploy.md, "The services' manifests", says the same.
"""

from __future__ import annotations

from pathlib import Path

from cluster import generated_region
from services.common.description import (
    CONTAINER_PORT,
    LIVENESS_PATH,
    READINESS_PATH,
    SERVICES,
    Service,
)

ROOT = Path(__file__).resolve().parents[1]
BASE = "k8s/base"
# The Secret the operator creates (docs/deploy.md); a name, not a secret.
SECRET = "quartet-secrets"  # noqa: S105
HEADER = (
    f"# Generated from {generated_region.SOURCE} by `{generated_region.COMMAND}`: do not edit.\n"
)


def secret_key(env: str) -> str:
    """The `quartet-secrets` key of an env variable (docs/deploy.md lists the keys)."""
    return env.lower().replace("_", "-")


def _secret_env(env: str, indent: str) -> str:
    return (
        f"{indent}- name: {env}\n"
        f"{indent}  valueFrom: {{secretKeyRef: {{name: {SECRET}, key: {secret_key(env)}}}}}\n"
    )


def _env(spec: Service) -> str:
    indent = " " * 12
    lines = [
        f"{indent}- {{name: QUARTET_SERVICE, value: {spec.name}}}\n",
        f'{indent}- {{name: PORT, value: "{CONTAINER_PORT}"}}\n',
        f'{indent}- {{name: WEB_CONCURRENCY, value: "2"}}\n',
        f"{indent}- {{name: PROMETHEUS_MULTIPROC_DIR, value: /tmp/metrics}}\n",
        _secret_env("ADMIN_TOKEN", indent),
    ]
    if spec.mysql:
        lines += [
            f"{indent}# Defined before MYSQL_DSN, which expands it.\n",
            _secret_env("MYSQL_PASSWORD", indent),
            f"{indent}- {{name: MYSQL_DSN, value: "
            f'"mysql://quartet:$(MYSQL_PASSWORD)@mysql:3306/quartet"}}\n',
        ]
    else:
        lines.append(
            f"{indent}# No MySQL (description: mysql=False): no MYSQL_PASSWORD, no MYSQL_DSN.\n"
        )
    lines += [_secret_env(env, indent) for env in spec.secrets]
    if spec.peers:
        lines.append(
            f"{indent}# Its peers by Service name: kube-proxy balances the connections, so the\n"
            f"{indent}# gateway is not a hop on the way.\n"
        )
    lines += [
        f'{indent}- {{name: {peer.upper()}_URL, value: "http://{peer}:{CONTAINER_PORT}"}}\n'
        for peer in spec.peers
    ]
    return "".join(lines)


def _labels(spec: Service, indent: str) -> str:
    return (
        f"{indent}app.kubernetes.io/name: {spec.name}\n"
        f"{indent}app.kubernetes.io/component: service\n"
    )


def _metadata(spec: Service) -> str:
    return f"metadata:\n  name: {spec.name}\n  labels:\n{_labels(spec, '    ')}"


def _deployment(spec: Service) -> str:
    name = spec.name
    res = spec.resources
    waits = "Start waits up to 30 s for MySQL; l" if spec.mysql else "L"
    startup_why = f"            # {waits}iveness only counts once the app answers.\n"
    spread = "".join(
        f"        - maxSkew: 1\n"
        f"          topologyKey: {key}\n"
        f"          whenUnsatisfiable: ScheduleAnyway\n"
        f"          labelSelector: {{matchLabels: {{app.kubernetes.io/name: {name}}}}}\n"
        f"          matchLabelKeys: [pod-template-hash]\n"
        for key in ("kubernetes.io/hostname", "topology.kubernetes.io/zone")
    )
    return f"""apiVersion: apps/v1
kind: Deployment
{_metadata(spec)}spec:
  # No `replicas`: the HorizontalPodAutoscaler owns the count (minReplicas 2). A replicas field
  # here would reset the autoscaler's choice on every `kubectl apply`.
  revisionHistoryLimit: 5
  minReadySeconds: 5
  strategy:
    type: RollingUpdate
    # A new pod must be ready before an old one goes: capacity never drops during a rollout.
    rollingUpdate: {{maxUnavailable: 0, maxSurge: 1}}
  selector:
    matchLabels:
      app.kubernetes.io/name: {name}
  template:
    metadata:
      labels:
{_labels(spec, "        ")}    spec:
      enableServiceLinks: false
      automountServiceAccountToken: false
      # preStop (5 s) + gunicorn's graceful timeout (30 s: the drain, and the counter's final
      # flush) + margin.
      terminationGracePeriodSeconds: 45
      securityContext:
        runAsNonRoot: true
        runAsUser: 10001
        runAsGroup: 10001
        fsGroup: 10001
        seccompProfile: {{type: RuntimeDefault}}
      topologySpreadConstraints:
{spread}      containers:
        - name: {name}
          image: quartet
          ports:
            - {{name: http, containerPort: {CONTAINER_PORT}}}
          envFrom:
            - configMapRef: {{name: quartet-env}}
          env:
{_env(spec)}          resources:
            requests: {{cpu: {res.cpu_request}, memory: {res.memory_request}}}
            limits: {{cpu: "{res.cpu_limit}", memory: {res.memory_limit}}}
          securityContext:
            allowPrivilegeEscalation: false
            readOnlyRootFilesystem: true
            capabilities: {{drop: [ALL]}}
          startupProbe:
{startup_why}            httpGet: {{path: {LIVENESS_PATH}, port: http}}
            periodSeconds: 2
            failureThreshold: 45
          readinessProbe:
            httpGet: {{path: {READINESS_PATH}, port: http}}
            periodSeconds: 5
            timeoutSeconds: 3
            failureThreshold: 2
          livenessProbe:
            httpGet: {{path: {LIVENESS_PATH}, port: http}}
            periodSeconds: 10
            timeoutSeconds: 3
            failureThreshold: 3
          lifecycle:
            preStop:
              # Keeps serving while the pod's removal from the Service reaches every node's
              # kube-proxy, so no new connection lands on a closed socket; only then does SIGTERM
              # start gunicorn's drain. The image has Python, not necessarily `sleep`.
              exec: {{command: [python, -c, "import time; time.sleep(5)"]}}
          volumeMounts:
            # Writable scratch with a read-only root: the Prometheus multiprocess files.
            - {{name: tmp, mountPath: /tmp}}
      volumes:
        - name: tmp
          emptyDir: {{medium: Memory, sizeLimit: 64Mi}}
"""


def _service(spec: Service) -> str:
    return f"""apiVersion: v1
kind: Service
{_metadata(spec)}spec:
  selector:
    app.kubernetes.io/name: {spec.name}
  ports:
    - {{name: http, port: {CONTAINER_PORT}, targetPort: http, appProtocol: http}}
"""


def _autoscaler(spec: Service) -> str:
    connections = (
        f"  # 10 x 2 workers x {spec.env_prefix}MYSQL_POOL_SIZE 4 = 80 MySQL connections at most\n"
        "  # (docs/deploy.md).\n"
        if spec.mysql
        else ""
    )
    return f"""apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
{_metadata(spec)}spec:
  scaleTargetRef: {{apiVersion: apps/v1, kind: Deployment, name: {spec.name}}}
  minReplicas: 2
{connections}  maxReplicas: 10
  metrics:
    - type: Resource
      resource:
        name: cpu
        target: {{type: Utilization, averageUtilization: 70}}
  behavior:
    # Up at once, down one pod a minute after 5 calm minutes: a retired pod drains (and the
    # counter flushes) first.
    scaleDown:
      stabilizationWindowSeconds: 300
      policies: [{{type: Pods, value: 1, periodSeconds: 60}}]
"""


def _disruption_budget(spec: Service) -> str:
    return f"""apiVersion: policy/v1
kind: PodDisruptionBudget
{_metadata(spec)}spec:
  minAvailable: 1
  # A crash-looping pod protects nothing: let a node drain evict it.
  unhealthyPodEvictionPolicy: AlwaysAllow
  selector:
    matchLabels:
      app.kubernetes.io/name: {spec.name}
"""


def manifest(spec: Service) -> str:
    """One service's Deployment, Service, HorizontalPodAutoscaler and PodDisruptionBudget."""
    parts = (_deployment(spec), _service(spec), _autoscaler(spec), _disruption_budget(spec))
    return f"{HEADER}# The {spec.name}: {spec.summary}.\n" + "---\n".join(parts)


def service_files() -> str:
    """The body of k8s/base/kustomization.yaml's `services` region."""
    return "".join(f"- {spec.name}.yaml\n" for spec in SERVICES)


def generated() -> dict[str, str]:
    files = {f"{BASE}/{spec.name}.yaml": manifest(spec) for spec in SERVICES}
    kustomization = f"{BASE}/kustomization.yaml"
    files[kustomization] = generated_region.regenerate(
        ROOT, kustomization, {"services": service_files()}
    )
    return files
