"""Whether the cluster can be measured, and what the endpoints' paths are filled with: the
gateway's internal listener answers, a campaign is served with a visitor cookie, every endpoint
answers 200 once, and (for the fan-out endpoints) the aggregator's upstream is a fast, reliable
simulator. Setup only: the load is wrk's (bench/wrk_runner.py)."""

from __future__ import annotations

import http.cookies
import json
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from email.message import Message

from endpoints import CEILING, ENDPOINTS, Endpoint

FAST_WORKSIM_ENV = (
    "WORKSIM_MIN_MS=0 WORKSIM_MAX_MS=2 WORKSIM_P_500=0 WORKSIM_P_429=0 "
    "WORKSIM_P_INVALID=0 WORKSIM_P_HANG=0"
)
# The simulator counts as fast when every sampled answer is a 200 {"time": t} with t <= this.
FAST_WORKSIM_MAX_MS = 10


class NotFit(Exception):
    """The cluster cannot be measured as asked (exit 2)."""


def fetch(
    url: str, method: str = "GET", timeout_s: float = 5.0, headers: dict[str, str] | None = None
) -> tuple[int, bytes, Message | None]:
    request = urllib.request.Request(url, method=method, headers=headers or {})  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:  # noqa: S310
            return int(response.status), response.read(), response.headers
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(), exc.headers
    except OSError:
        return 0, b"", None


@dataclass
class Context:
    """What the endpoints' paths and headers are filled with."""

    base: str
    campaign: int
    page: str
    cookie: str

    def url(self, endpoint: Endpoint) -> str:
        return self.base + endpoint.path.format(campaign=self.campaign, page=self.page)


def prepare(base: str) -> Context:
    status, _, _ = fetch(f"{base}/_ping/counter")
    if status != 200:
        raise NotFit(
            f"{base}/_ping/counter answered {status or 'nothing'}: is `make up` running, and is "
            "this the gateway's internal listener (the only one serving /_ping)?"
        )
    campaign = next(
        (c for c in (1001, 1) if fetch(f"{base}/api/campaigns/{c}/banner")[0] == 200), None
    )
    if campaign is None:
        raise NotFit("neither campaign 1001 (generated data) nor 1 (original data) is served")
    status, _, headers = fetch(f"{base}/campaigns/{campaign}")
    jar = http.cookies.SimpleCookie()
    for value in headers.get_all("set-cookie") or [] if headers is not None else []:
        jar.load(value)
    if status != 200 or "quartet_visitor" not in jar:
        raise NotFit(f"/campaigns/{campaign} answered {status} without a visitor cookie")
    page = f"bench-{int(time.time())}"
    if fetch(f"{base}/visits/{page}", method="POST")[0] != 200:
        raise NotFit("POST /visits failed")
    ctx = Context(base, campaign, page, f"quartet_visitor={jar['quartet_visitor'].value}")
    for endpoint in (*ENDPOINTS, CEILING):
        if "cold" in endpoint.script:
            continue
        method = "POST" if "method=POST" in endpoint.script else "GET"
        headers_out = {"Cookie": ctx.cookie} if endpoint.cookie else {}
        status, _, _ = fetch(ctx.url(endpoint), method=method, headers=headers_out)
        if status != 200:
            raise NotFit(f"{endpoint.name}: {ctx.url(endpoint)} answered {status or 'nothing'}")
    return ctx


def check_fast_worksim(url: str, samples: int = 40) -> None:
    """Sample the simulator directly: every answer a quick 200 {"time": t}, t small."""
    slow: list[str] = []
    for _ in range(samples):
        started = time.perf_counter()
        status, body, _ = fetch(url, timeout_s=2.0)
        took_ms = 1000 * (time.perf_counter() - started)
        try:
            reported = json.loads(body)["time"] if status == 200 else None
        except (ValueError, KeyError, TypeError):
            reported = None
        if status != 200 or not isinstance(reported, int) or reported > FAST_WORKSIM_MAX_MS:
            slow.append(f"status {status}, time {reported}, {took_ms:.0f} ms")
            if len(slow) == 3:
                break
    if slow:
        raise NotFit(
            f"the aggregator's upstream {url} is not a fast, reliable simulator "
            f"(samples: {slow}); the fan-out benchmarks would "
            f"measure its sleeps and failures. Restart the cluster with\n"
            f"  make down; {FAST_WORKSIM_ENV} make up\n"
            f"or leave them out: --skip /api/first,/api/smart"
        )
