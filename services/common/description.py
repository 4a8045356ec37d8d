"""The one description of the cluster: which services it runs, and what each serves and needs.

Every deployment's copy of these facts is rendered from here or checked against here, so a change
to the cluster's shape is one edit (docs/architecture.md, "One description", lists every copy and
how it follows). `python -m cluster.generate` rewrites the generated files; `tests/description/`
fails when one is stale or when a hand-written file disagrees.

It lives in the kit, not in cluster/, because the image carries only services/ and gunicorn's
configuration needs the service list in a container too.
"""

from __future__ import annotations

from dataclasses import dataclass

# Every service listens on this port in a container (compose, Kubernetes); locally each instance
# has its own (Service.local_port + instance - 1, shifted by QUARTET_PORT_OFFSET).
CONTAINER_PORT = 8000
# The kit's probes (services/common/health.py): the same paths for every service.
LIVENESS_PATH = "/healthz"
READINESS_PATH = "/readyz"
METRICS_PATH = "/metrics"


@dataclass(frozen=True)
class Route:
    """One nginx `location` on the gateway, proxied to the service."""

    match: str  # what follows `location`: "/users/", "= /batch-recommend", "~ ^/visits?/"
    # Admin routes are served on the internal listener, and on the public one only when a
    # deployment sets GATEWAY_PUBLIC_ADMIN=true (docs/security.md); the services demand the token.
    admin: bool = False


@dataclass(frozen=True)
class Resources:
    """A Kubernetes container's requests and limits (compose's limits are the cluster-wide ones)."""

    cpu_request: str
    memory_request: str
    cpu_limit: str
    memory_limit: str


@dataclass(frozen=True)
class Service:
    name: str  # the package, the supervisord group, the nginx upstream, the Prometheus job
    summary: str  # one line, for generated files' comments
    local_port: int  # the first local instance's port before QUARTET_PORT_OFFSET
    routes: tuple[Route, ...]
    redis: bool
    mysql: bool
    resources: Resources
    # Env names of secrets only this service needs (generated under .run/secrets locally).
    secrets: tuple[str, ...] = ()
    # Services it calls over HTTP (the aggregator's page): their URLs are passed as <PEER>_URL.
    peers: tuple[str, ...] = ()
    # Requests the gateway holds in flight to one instance at most (nginx `max_conns`); with every
    # instance at it, the gateway answers 503 with Retry-After itself (docs/reliability.md,
    # "Admission control"). 64: two workers' worth of the adaptive limit's working range, above
    # the 32 per instance that `make bench`'s 64 connections put on each of two.
    gateway_conns: int = 64

    @property
    def env_prefix(self) -> str:
        """The prefix of the service's own settings (COUNTER_FLUSH_INTERVAL_S, ...)."""
        return f"{self.name.upper()}_"

    @property
    def servers_var(self) -> str:
        """The nginx template placeholder that holds the upstream's `server` lines."""
        return f"{self.name.upper()}_SERVERS"

    @property
    def app(self) -> str:
        return f"services.{self.name}.app:app"


_SMALL = Resources(cpu_request="250m", memory_request="128Mi", cpu_limit="1", memory_limit="256Mi")
_MEDIUM = Resources(cpu_request="500m", memory_request="256Mi", cpu_limit="2", memory_limit="512Mi")

SERVICES: tuple[Service, ...] = (
    Service(
        "counter",
        "page visits (POST /visits/{id}, POST /visit/{id}, GET /visits/{id}[/daily])",
        local_port=8110,
        routes=(Route("~ ^/visits?/"),),
        redis=True,
        mysql=True,
        resources=_MEDIUM,
    ),
    Service(
        "banner",
        "campaign pages, banner JSON, images, gift-code claims",
        local_port=8120,
        routes=(
            Route("/campaigns/"),
            Route("/api/campaigns/"),
            Route("/images/"),
            # The regex wins over the /api/campaigns/ prefix above.
            Route("~ ^/api/campaigns/[^/]+/gift-codes$", admin=True),
        ),
        redis=True,
        mysql=True,
        resources=_MEDIUM,
        secrets=("BANNER_COOKIE_SECRET",),
    ),
    Service(
        "recommender",
        "recommendations, batches, events",
        local_port=8130,
        routes=(
            Route("/recommend/"),
            Route("= /batch-recommend"),
            Route("/users/"),
            Route("/invalidate-cache/", admin=True),
        ),
        redis=True,
        mysql=True,
        # Its L1 (RECOMMENDER_L1_SIZE users per worker) is why it gets more memory.
        resources=Resources(
            cpu_request="500m", memory_request="256Mi", cpu_limit="2", memory_limit="768Mi"
        ),
    ),
    Service(
        "aggregator",
        "deadline-bound fan-out and page composition",
        local_port=8140,
        routes=(Route("~ ^/api/(all|first|within-timeout|smart)$"), Route("/api/page/")),
        redis=True,
        mysql=False,
        resources=_MEDIUM,
        peers=("banner", "counter", "recommender"),
        # Its requests wait on its upstreams, not on its CPU: one instance holds 200-220 in
        # flight at 450 r/s against the default simulator (docs/performance.md, "Capacity").
        gateway_conns=512,
    ),
)

# The aggregator's default upstream in the demo deployments: a test double of the fan-out
# assignment's work server (services/worksim). Not behind the gateway, no stores, not a service
# of the cluster in the sense above; gunicorn and the image can still run it.
WORKSIM = Service(
    "worksim",
    "the simulated slow, flaky work server",
    local_port=8190,
    routes=(),
    redis=False,
    mysql=False,
    resources=_SMALL,
)

RUNNABLE: tuple[Service, ...] = (*SERVICES, WORKSIM)


def service(name: str) -> Service:
    for spec in RUNNABLE:
        if spec.name == name:
            return spec
    raise KeyError(f"no service {name!r}: expected one of {', '.join(s.name for s in RUNNABLE)}")


def names() -> tuple[str, ...]:
    return tuple(spec.name for spec in SERVICES)
