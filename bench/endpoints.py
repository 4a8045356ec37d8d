"""What `make bench` measures: the endpoints, the ceiling they are compared with, and the issue's
targets for each group. bench/run.py fills in the paths' placeholders (bench/probes.py)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

Group = Literal["ceiling", "hot", "uncached", "fanout"]
# The targets, as a share of the ceiling (the stack's trivial endpoint through nginx).
TARGET_RATIO: Mapping[str, float] = {"hot": 0.70, "uncached": 0.25, "fanout": 0.30}
# p99 at half of the measured maximum rate, for every endpoint but the fan-out ones.
HALF_RATE_P99_TARGET_MS = 25.0


@dataclass(frozen=True)
class Endpoint:
    """One thing measured. `path` may hold {campaign} and {page} placeholders that run.py fills
    in; `script` are wrk.lua options; `service` (a name in services/common/description.py) is
    whose worker the profile samples."""

    name: str
    group: Group
    service: str
    path: str
    script: tuple[str, ...] = ()
    cookie: bool = False

    @property
    def target(self) -> float | None:
        return TARGET_RATIO.get(self.group)

    @property
    def half_rate_target_ms(self) -> float | None:
        return HALF_RATE_P99_TARGET_MS if self.group in ("hot", "uncached") else None


CEILING = Endpoint("trivial (ceiling)", "ceiling", "counter", "/_ping/counter")
ENDPOINTS: tuple[Endpoint, ...] = (
    Endpoint("banner page", "hot", "banner", "/campaigns/{campaign}", cookie=True),
    Endpoint("banner JSON", "hot", "banner", "/api/campaigns/{campaign}/banner", cookie=True),
    Endpoint("visit POST", "hot", "counter", "/visits/{page}", script=("method=POST",)),
    Endpoint("visit GET", "hot", "counter", "/visits/{page}"),
    Endpoint("recommend cached", "hot", "recommender", "/recommend/42"),
    # The path is the script's: a never-seen user id per request.
    Endpoint("recommend uncached", "uncached", "recommender", "/", script=("cold",)),
    Endpoint(
        "batch of 20",
        "hot",
        "recommender",
        "/batch-recommend?user_ids=" + ",".join(str(i) for i in range(1, 21)),
    ),
    Endpoint("/api/first", "fanout", "aggregator", "/api/first?timeout=1000"),
    Endpoint("/api/smart", "fanout", "aggregator", "/api/smart?timeout=1000"),
    Endpoint(
        "page composition",
        "fanout",
        "aggregator",
        "/api/page/{page}?campaign_id={campaign}&user_id=42",
        script=('expect="errors":{}',),
        cookie=True,
    ),
)


def endpoint_named(name: str) -> Endpoint:
    for endpoint in (CEILING, *ENDPOINTS):
        if endpoint.name == name:
            return endpoint
    raise KeyError(f"no endpoint {name!r}; known: {[e.name for e in (CEILING, *ENDPOINTS)]}")
