"""The gateway's per-service nginx files, generated from services/common/description.py.

Generated whole (they are boilerplate once the routes are known):
- nginx/upstreams.conf.template: one upstream per service, its `server` lines a placeholder
  (<SERVICE>_SERVERS) that nginx/render.sh fills per deployment;
- nginx/api/<service>.conf: the service's public routes, proxied to its upstream;
- nginx/gateway/admin.conf and admin-closed.conf: the admin routes, proxied (the internal
  listener; the public one when GATEWAY_PUBLIC_ADMIN=true) or answered 404 (the public one).
Generated regions inside hand-written files (cluster/generated_region.py):
- nginx/gateway/internal.conf: each service's trivial endpoint under /_ping/<service>;
- nginx/kustomization.yaml: the nginx-api ConfigMap's file list;
- nginx/upstreams.sh: each service's bound on requests in flight to one instance.
Hand-tuned directives stay hand-written: the timeouts, retries and headers in gateway/http.conf,
the limits in gateway/*limits.conf.template, the claim route with its own limit_req in
gateway/claims.conf.template. tests/description/test_generated.py fails when a file is stale.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from cluster import generated_region
from services.common import description
from services.common.description import Route, Service

ROOT = Path(__file__).resolve().parents[1]
HEADER = (
    f"# Generated from {generated_region.SOURCE} by `{generated_region.COMMAND}`: do not edit.\n"
)


_UPSTREAMS_NOTE = """\
# Rendered per deployment by nginx/render.sh: the servers of each upstream differ, the rest does
# not. Passive health: an instance failing 3 times is left out for 5 s. Each upstream's state
# lives in a shared zone, so every nginx worker agrees on it: without one each worker counts
# failures on its own, and one still sends to an instance the others have left out (or the
# reverse) for up to fail_timeout after it came back.
"""
_ADMIN_NOTE = """\
# The admin routes (the services still require the bearer ADMIN_TOKEN): on the internal listener
# always, on the public one only when a deployment sets GATEWAY_PUBLIC_ADMIN=true
# (docs/security.md).
"""
_ADMIN_CLOSED_NOTE = """\
# The public listener when it does not serve the admin routes (the default): not found, the same
# JSON 404 as any path it does not route, so it does not even say they exist.
"""


def _location(route: Route, body: str) -> str:
    return f"location {route.match} {{\n    {body}\n}}\n"


def upstreams(services: tuple[Service, ...]) -> str:
    blocks = [
        f"upstream {spec.name} {{\n"
        f"    zone upstream_{spec.name} 64k;\n"
        f"    ${{{spec.servers_var}}}\n"
        "    keepalive 64;\n"
        "    keepalive_timeout 60s;\n"
        "}\n"
        for spec in services
    ]
    return HEADER + _UPSTREAMS_NOTE + "\n".join(blocks)


def api(spec: Service) -> str:
    public = [r for r in spec.routes if not r.admin]
    note = " (its admin routes: gateway/admin.conf)" if len(public) < len(spec.routes) else ""
    return (
        HEADER
        + f"# {spec.name}: {spec.summary}{note}\n"
        + "\n".join(_location(r, f"proxy_pass http://{spec.name};") for r in public)
    )


def _admin_routes(services: tuple[Service, ...]) -> list[tuple[Service, Route]]:
    return [(spec, r) for spec in services for r in spec.routes if r.admin]


def admin_open(services: tuple[Service, ...]) -> str:
    return (
        HEADER
        + _ADMIN_NOTE
        + "\n".join(
            _location(r, f"proxy_pass http://{spec.name};") for spec, r in _admin_routes(services)
        )
    )


def admin_closed(services: tuple[Service, ...]) -> str:
    return (
        HEADER
        + _ADMIN_CLOSED_NOTE
        + "\n".join(_location(r, "return 404;") for _, r in _admin_routes(services))
    )


def pings(services: tuple[Service, ...]) -> str:
    return "".join(
        f"location = /_ping/{spec.name} {{ proxy_pass http://{spec.name}/ping; }}\n"
        for spec in services
    )


def instance_conns(services: tuple[Service, ...]) -> str:
    cases = "".join(f"        {spec.name}) echo {spec.gateway_conns} ;;\n" for spec in services)
    default = dataclasses.fields(Service)  # a name the description does not know: the default
    fallback = next(f.default for f in default if f.name == "gateway_conns")
    return (
        f"instance_conns_of() {{\n    case $1 in\n{cases}        *) echo {fallback} ;;\n"
        "    esac\n}\n"
    )


def api_files(services: tuple[Service, ...]) -> str:
    return "".join(f"- api/{spec.name}.conf\n" for spec in sorted(services, key=lambda s: s.name))


def generated() -> dict[str, str]:
    # Read at call time, not imported: tests/description describes one more service.
    services = description.SERVICES
    files = {
        "nginx/upstreams.conf.template": upstreams(services),
        "nginx/gateway/admin.conf": admin_open(services),
        "nginx/gateway/admin-closed.conf": admin_closed(services),
        **{f"nginx/api/{spec.name}.conf": api(spec) for spec in services},
    }
    regions = {
        "nginx/gateway/internal.conf": {"pings": pings(services)},
        "nginx/kustomization.yaml": {"nginx-api": api_files(services)},
        "nginx/upstreams.sh": {"instance-conns": instance_conns(services)},
    }
    files.update({path: generated_region.regenerate(ROOT, path, r) for path, r in regions.items()})
    return files
