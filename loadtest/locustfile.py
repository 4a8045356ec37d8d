"""Quartet's locust profiles: one user class per kind of traffic, with the weights of a shop.

- `Visitor` (weight 60, waits 0.5-1.5 s): campaign pages (and each banner image once, as a
  browser caches it), banner JSON, composed pages, visit POSTs and GETs, daily counts; one cookie
  jar per visitor, so banner rotation works.
- `RecommendationReader` (25, 0.5-1.5 s): `/recommend/{id}` with log-uniform ids (a heavy head,
  so the caches matter), batches of 20.
- `ApiClient` (10, 0.5-1.5 s): the aggregator's fan-out: `/api/first`, `/api/smart`, `/api/all`,
  `/api/within-timeout`.
- `AdminTrickle` (5, 2-5 s): searches and purchases (which invalidate the user's cached
  recommendation), admin invalidations, gift codes minted (admin) and claimed by new visitors.

Every user waits about a second between requests (`--think-time` / `LOCUST_THINK_TIME`
multiplies the waits), so N users offer about N requests a second: the 10 / 100 / 1,000-user
profiles (`profiles/*.conf`) offer 10 / 100 / 1,000 r/s; users wait for their answers, so an
overloaded cluster gets less (the report says what was served).

Run (from the repository, or with this directory mounted at /mnt/locust in locustio/locust):

    ADMIN_TOKEN=... locust -f loadtest/locustfile.py --config loadtest/profiles/100.conf \\
        [--host http://127.0.0.1:8081] [--csv results/run --html results/run.html]

Environment: `ADMIN_TOKEN` (required by the admin trickle), `LOCUST_ADMIN_HOST` (where the admin
routes are: the internal listener; default the host), `LOCUST_HOST` (or `--host`),
`LOADTEST_CAMPAIGNS` (e.g. `1001-1024`; discovered when unset), `LOCUST_MAX_ERROR_RATE`,
`LOCUST_THINK_TIME`.

The verdict (verdict.py, judging by outcomes.py): 429s from the gateway's limits and the
aggregator's own 502/504 on a fan-out endpoint are expected and reported apart; any other failure
is unexpected, and the run exits 1 when unexpected failures exceed `--max-error-rate` percent of
the requests served (0: none at all). What the users and handlers share during a run (the
campaigns, the verdict) is one object on locust's environment (run_state.py). Only locust, the
standard library and the sibling modules are imported.
"""

from __future__ import annotations

import logging
import os
import random
import time
from collections.abc import Callable
from typing import Any, TypeVar

import outcomes
import run_state
import traffic
import verdict
from locust import FastHttpUser, events, task
from locust.env import Environment
from locust.exception import StopUser

log = logging.getLogger("quartet.loadtest")

# The timeouts the API clients give the aggregator (ms).
FANOUT_TIMEOUT_MS = 1000
GIFT_CODE_BATCH = 20

Handler = TypeVar("Handler", bound=Callable[..., None])


def _on(hook: Any) -> Callable[[Handler], Handler]:
    """`@_on(events.init)`: locust's EventHook is untyped; this keeps the handlers typed."""

    def register(handler: Handler) -> Handler:
        hook.add_listener(handler)
        return handler

    return register


def _fire(hook: Any, **kwargs: Any) -> None:
    hook.fire(**kwargs)


@_on(events.init_command_line_parser)
def _options(parser: Any, **_: Any) -> None:
    parser.add_argument(
        "--max-error-rate",
        type=float,
        default=1.0,
        env_var="LOCUST_MAX_ERROR_RATE",
        help="fail the run (exit 1) when unexpected failures exceed this percentage of the "
        "requests served; 0: any unexpected failure fails it (expected 429s and the "
        "aggregator's upstream 502/504 are reported apart)",
    )
    parser.add_argument(
        "--think-time",
        type=float,
        default=1.0,
        env_var="LOCUST_THINK_TIME",
        help="multiplies every user's wait between tasks (default 1: about one request a "
        "second per user; 3: a third of that)",
    )


@_on(events.init)
def _wire(environment: Environment, **_: Any) -> None:
    """One RunState per run, on the environment; the handlers that fill and read it."""
    state = run_state.attach(environment)
    hooks: Any = environment.events
    hooks.test_start.add_listener(lambda **_: run_state.discover(environment))
    hooks.quitting.add_listener(lambda **_: verdict.judge(environment))
    hooks.quit.add_listener(lambda **_: verdict.print_last(state))


class QuartetUser(FastHttpUser):
    abstract = True
    kind = "?"
    # Seconds between two tasks (uniform), times --think-time.
    waits: tuple[float, float] = (0.5, 1.5)
    network_timeout = 15.0
    connection_timeout = 5.0

    def on_start(self) -> None:
        self.rng = random.Random()
        self.think = float(getattr(self.environment.parsed_options, "think_time", 1.0))

    def wait_time(self) -> float:
        return self.think * self.rng.uniform(*self.waits)

    def call(
        self,
        method: str,
        path: str,
        name: str,
        *,
        check: outcomes.Check | None = None,
        ok: tuple[int, ...] = (200,),
        fanout: bool = False,
        **kwargs: Any,
    ) -> bytes | None:
        """One request, judged by outcomes.classify; the body when it was ok, else None.
        After a gateway 429 or a refusal the user honours Retry-After, as a well-behaved client
        does."""
        with self.client.request(
            method, path, name=f"{self.kind}: {name}", catch_response=True, **kwargs
        ) as response:
            body = response.content or b""
            error = response.request_meta.get("exception")
            retry_after = (response.headers or {}).get("retry-after") or ""
            verdict = outcomes.classify(
                response.status_code or 0,
                body,
                ok=ok,
                fanout=fanout,
                check=check,
                error=repr(error) if error is not None else "",
                retry_after=bool(retry_after),
            )
            if verdict.outcome is outcomes.Outcome.OK:
                response.success()
            else:
                response.failure(verdict.message)
        if verdict.outcome in (outcomes.Outcome.RATE_LIMITED, outcomes.Outcome.REFUSED):
            time.sleep(min(5.0, float(retry_after)) if retry_after.isdigit() else 1.0)
        return body if verdict.outcome is outcomes.Outcome.OK else None

    def campaign(self) -> int:
        return traffic.pick(run_state.of(self.environment).campaigns, self.rng)


class Visitor(QuartetUser):
    """A shop's visitor: pages with a banner, visit counts, the composed page."""

    kind = "visitor"
    weight = 60
    waits = (0.5, 1.5)

    def on_start(self) -> None:
        super().on_start()
        self.user_id = traffic.skewed(traffic.RECOMMENDER_USERS, self.rng)
        self.images_seen: set[str] = set()

    @task(4)
    def campaign_page(self) -> None:
        body = self.call(
            "GET",
            f"/campaigns/{self.campaign()}",
            "/campaigns/{id}",
            check=outcomes.check_campaign_page,
        )
        image = outcomes.image_url(body) if body is not None else None
        # The image is immutable and cacheable for a day: a browser fetches each one once.
        if image and image not in self.images_seen:
            self.images_seen.add(image)
            self.call("GET", image, "/images/image_{id}.png")

    @task(2)
    def banner_json(self) -> None:
        self.call(
            "GET",
            f"/api/campaigns/{self.campaign()}/banner",
            "/api/campaigns/{id}/banner",
            check=outcomes.check_banner,
        )

    @task(3)
    def composed_page(self) -> None:
        page = traffic.page_id(self.rng)
        self.call(
            "GET",
            f"/api/page/{page}?campaign_id={self.campaign()}&user_id={self.user_id}",
            "/api/page/{page_id}",
            check=outcomes.check_page,
        )

    @task(4)
    def visit(self) -> None:
        self.call(
            "POST",
            f"/visits/{traffic.page_id(self.rng)}",
            "/visits/{page_id}",
            check=outcomes.check_visit_post,
        )

    @task(3)
    def visits(self) -> None:
        self.call(
            "GET",
            f"/visits/{traffic.page_id(self.rng)}",
            "/visits/{page_id}",
            check=outcomes.check_visit_get,
        )

    @task(1)
    def daily(self) -> None:
        self.call(
            "GET",
            f"/visits/{traffic.page_id(self.rng)}/daily?days=7",
            "/visits/{page_id}/daily",
            check=outcomes.check_daily,
        )


class RecommendationReader(QuartetUser):
    """Readers of recommendations: a few users very often, a long tail rarely."""

    kind = "reader"
    weight = 25
    waits = (0.5, 1.5)

    @task(20)
    def read(self) -> None:
        user = traffic.skewed(traffic.RECOMMENDER_USERS, self.rng)
        self.call(
            "GET", f"/recommend/{user}", "/recommend/{user_id}", check=outcomes.check_recommend
        )

    @task(2)
    def batch(self) -> None:
        ids = ",".join(map(str, traffic.batch_ids(20, self.rng)))
        self.call(
            "GET",
            f"/batch-recommend?user_ids={ids}",
            "/batch-recommend (20)",
            check=outcomes.check_batch,
        )


class ApiClient(QuartetUser):
    """Clients of the aggregator's fan-out under a deadline."""

    kind = verdict.FANOUT_KIND
    weight = 10
    waits = (0.5, 1.5)

    def _fanout(self, policy: str, check: outcomes.Check, timeout_ms: int) -> None:
        self.call(
            "GET", f"/api/{policy}?timeout={timeout_ms}", f"/api/{policy}", check=check, fanout=True
        )

    @task(3)
    def first(self) -> None:
        self._fanout("first", outcomes.check_first, FANOUT_TIMEOUT_MS)

    @task(3)
    def smart(self) -> None:
        self._fanout("smart", outcomes.check_first, FANOUT_TIMEOUT_MS)

    @task(1)
    def all(self) -> None:
        self._fanout("all", outcomes.check_list, FANOUT_TIMEOUT_MS)

    @task(1)
    def within_timeout(self) -> None:
        self._fanout("within-timeout", outcomes.check_list, FANOUT_TIMEOUT_MS // 2)


# The admin routes (mint, invalidation) are served by the gateway's internal listener only
# (docs/security.md): a run against the public listener names the internal one here.
ADMIN_HOST = os.environ.get("LOCUST_ADMIN_HOST", "").rstrip("/")


class AdminTrickle(QuartetUser):
    """The shop's back office and activity feed: events (which invalidate a user's cached
    recommendation everywhere), admin invalidations, gift codes minted and claimed."""

    kind = "admin"
    weight = 5
    waits = (2.0, 5.0)

    def on_start(self) -> None:
        super().on_start()
        token = os.environ.get("ADMIN_TOKEN", "")
        if not token:
            log.error("ADMIN_TOKEN is not set: the admin trickle cannot run")
            _fire(
                self.environment.events.request,
                request_type="SETUP",
                name=f"{self.kind}: ADMIN_TOKEN",
                response_time=0,
                response_length=0,
                exception=RuntimeError("ADMIN_TOKEN is not set"),
                context={},
            )
            raise StopUser
        self.auth = {"Authorization": f"Bearer {token}"}
        # Claims only ever take codes this user minted, so the pool never runs dry whatever
        # other users (or earlier runs) do.
        self.gift_campaign = run_state.of(self.environment).campaigns[0]
        self.codes_left = 0
        self.mint()

    def mint(self) -> None:
        body = self.call(
            "POST",
            f"{ADMIN_HOST}/api/campaigns/{self.gift_campaign}/gift-codes",
            "/api/campaigns/{id}/gift-codes",
            ok=(201,),
            json={"count": GIFT_CODE_BATCH},
            headers=self.auth,
            check=outcomes.check_minted,
        )
        if body is not None:
            self.codes_left += GIFT_CODE_BATCH

    @task(6)
    def event(self) -> None:
        user = traffic.skewed(traffic.RECOMMENDER_USERS, self.rng)
        self.call(
            "POST",
            f"/users/{user}/events",
            "/users/{user_id}/events",
            ok=(202,),
            json=traffic.event(self.rng),
            check=outcomes.check_accepted,
        )

    @task(2)
    def invalidate(self) -> None:
        user = traffic.skewed(traffic.RECOMMENDER_USERS, self.rng)
        self.call(
            "POST",
            f"{ADMIN_HOST}/invalidate-cache/{user}",
            "/invalidate-cache/{user_id}",
            headers=self.auth,
            check=outcomes.check_invalidated,
        )

    @task(3)
    def claim(self) -> None:
        if self.codes_left <= 0:
            self.mint()
            if self.codes_left <= 0:
                return
        # A new visitor each time (an empty cookie jar): the same visitor would get the same code.
        # It views the campaign first: the service gives codes only to visitors it served the
        # campaign to (the cookie that view sets), any other claim is a 403 (docs/banner.md).
        self.client.cookiejar.clear()
        served = self.call(
            "GET",
            f"/api/campaigns/{self.gift_campaign}/banner",
            "/api/campaigns/{id}/banner",
            check=outcomes.check_banner,
        )
        if served is None:
            return
        body = self.call(
            "POST",
            f"/api/campaigns/{self.gift_campaign}/gift-code",
            "/api/campaigns/{id}/gift-code",
            check=outcomes.check_gift_code,
        )
        if body is not None:
            self.codes_left -= 1
