"""What `make bench` measures (bench/endpoints.py) agrees with the one description of the cluster:
each endpoint is a described service's, and the gateway routes its path to that service."""

from __future__ import annotations

import re

import pytest
from endpoints import CEILING, ENDPOINTS, Endpoint

from services.common.description import SERVICES, Route, names


def routed(route: Route, path: str) -> bool:
    """nginx's three kinds of `location` used in the description: exact, regex, prefix."""
    if route.match.startswith("= "):
        return path == route.match[2:]
    if route.match.startswith("~ "):
        return re.search(route.match[2:], path) is not None
    return path.startswith(route.match)


def services_routing(path: str) -> set[str]:
    return {s.name for s in SERVICES if any(routed(r, path) for r in s.routes)}


@pytest.mark.parametrize("endpoint", [CEILING, *ENDPOINTS], ids=lambda e: e.name)
def test_each_endpoint_belongs_to_a_described_service(endpoint: Endpoint) -> None:
    assert endpoint.service in names()


@pytest.mark.parametrize(
    "endpoint", [e for e in ENDPOINTS if "cold" not in e.script], ids=lambda e: e.name
)
def test_the_gateway_routes_each_endpoint_to_its_service(endpoint: Endpoint) -> None:
    path = endpoint.path.format(campaign=1, page="p").split("?")[0]
    assert services_routing(path) == {endpoint.service}


def test_the_cold_recommendations_are_routed_to_the_recommender() -> None:
    # wrk.lua's `cold` requests ask for /recommend/<id>.
    assert services_routing("/recommend/1763900000000001") == {"recommender"}


def test_the_route_matcher_can_tell_services_apart() -> None:
    assert services_routing("/nowhere") == set()
    assert services_routing("/batch-recommend/x") == set()  # an exact location
