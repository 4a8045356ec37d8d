"""The cluster's front door: one page composed from the other three services under one deadline.

The three parts are fetched concurrently; whatever arrived by the deadline is in the page, and
`errors` says why each missing part is missing. The visitor's cookie goes to the banner service
and its Set-Cookie comes back, so banner rotation works through the aggregator too.

The aggregator is its peers' client, not part of them: it knows their public paths as any caller
through the gateway does, and imports nothing of theirs. The one fact it shares with the counter,
what a page id is, is the kit's (services/common/page_id.py), so it refuses exactly what the
counter would and only ever puts a path-safe id into the counter's URL.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from services.aggregator.upstream import Outcome, Upstream, any_json
from services.common.prefer import RETURN_REPRESENTATION, says_return_representation

PREFERENCE_APPLIED = "preference-applied"
SET_COOKIE = "set-cookie"


@dataclass(frozen=True)
class Peers:
    counter: Upstream
    banner: Upstream
    recommender: Upstream
    counter_url: str
    banner_url: str
    recommender_url: str


@dataclass
class Page:
    body: dict[str, Any]
    set_cookies: list[str] = field(default_factory=list)

    @property
    def parts_arrived(self) -> int:
        return sum(self.body[p] is not None for p in ("visits", "banner", "recommendations"))


def _why(outcome: Outcome) -> str:
    if outcome.kind == "timeout":
        return "timeout"
    if outcome.kind == "connect_error" or (outcome.status is not None and outcome.status >= 500):
        return "unavailable"
    if outcome.status == 404:
        return "not_found"
    return "bad_response"


async def compose(
    peers: Peers,
    page_id: str,
    campaign_id: int | None,
    user_id: int | None,
    *,
    cookie: str | None,
    request_id: str | None,
    deadline: float,
) -> Page:
    headers = {"X-Request-ID": request_id} if request_id else {}

    async def visits() -> Outcome:
        url = f"{peers.counter_url}/visits/{page_id}"
        recorded = await peers.counter.call(
            "POST",
            url,
            deadline,
            judge=any_json,
            headers={**headers, "Prefer": RETURN_REPRESENTATION},
            keep_headers=(PREFERENCE_APPLIED,),
        )
        applied = (value for name, value in recorded.headers if name == PREFERENCE_APPLIED)
        if not recorded.ok or says_return_representation(applied):
            return recorded
        # A counter from before `Prefer` answered the POST the old way: read the count apart.
        return await peers.counter.call("GET", url, deadline, judge=any_json, headers=headers)

    async def banner() -> Outcome:
        url = f"{peers.banner_url}/api/campaigns/{campaign_id}/banner"
        with_cookie = {**headers, "Cookie": cookie} if cookie else headers
        return await peers.banner.call(
            "GET", url, deadline, judge=any_json, headers=with_cookie, keep_headers=(SET_COOKIE,)
        )

    async def recommendations() -> Outcome:
        url = f"{peers.recommender_url}/recommend/{user_id}"
        return await peers.recommender.call("GET", url, deadline, judge=any_json, headers=headers)

    wanted = {"visits": visits()}
    if campaign_id is not None:
        wanted["banner"] = banner()
    if user_id is not None:
        wanted["recommendations"] = recommendations()
    outcomes = dict(zip(wanted, await asyncio.gather(*wanted.values()), strict=True))
    page = Page({"page_id": page_id, "visits": None, "banner": None, "recommendations": None})
    errors: dict[str, str] = {}
    for part, outcome in outcomes.items():
        if outcome.ok:
            page.body[part] = outcome.body
        else:
            errors[part] = _why(outcome)
        page.set_cookies += [value for name, value in outcome.headers if name == SET_COOKIE]
    page.body["errors"] = errors
    return page
