from __future__ import annotations

import datetime as dt
import html
import random
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Path, Query, Request
from prometheus_client import Counter
from pydantic import BaseModel, Field
from starlette.responses import HTMLResponse, Response

from services.banner.catalog import Catalog
from services.banner.giftcodes import GiftCodes
from services.banner.images import ImageStore
from services.banner.rules import BannerSet, quarter_of
from services.banner.visitors import COOKIE, Visitor, VisitorCookies
from services.common.auth import require_admin
from services.common.problems import (
    MAXIMUM_SETTING,
    BadInput,
    NotFound,
    Unprocessable,
    problem,
    problem_responses,
)
from services.common.responses import OrjsonResponse

router = APIRouter()
PICKS = Counter(
    "banner_picks", "Banners served, by the rule that made the campaign's set", ["rule"]
)
CampaignId = Annotated[int, Path(ge=1, le=2**32 - 1, description="a positive integer")]
ImageName = Annotated[str, Path(pattern=r"^image_[1-9][0-9]{0,9}\.png$")]
_pick = random.Random()  # not for secrets: a fair pick among a handful of banners
# The admin's name for one mint (draft-ietf-httpapi-idempotency-key-header): visible ASCII,
# compared exactly, scoped to the campaign, remembered for giftcodes.MINT_KEY_RETENTION_S.
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        pattern=r"^[\x21-\x7e]{1,255}$",
        description="a retry with the same key mints once and gets the first answer",
    ),
]
# Why a claim is refused: the claim must come from a visitor the campaign's banner was served to.
# cookie origin -> (the problem's `reason`, its detail)
NOT_SERVED = {
    "none": (
        "no_cookie",
        "no visitor cookie: a gift code goes to a visitor the campaign's banner was shown to;"
        " view the campaign first",
    ),
    "invalid": (
        "invalid_cookie",
        "the visitor cookie is not valid (altered, or signed with another secret): view"
        " the campaign first",
    ),
    "expired": ("expired_cookie", "the visitor cookie has expired: view the campaign first"),
    "valid": ("not_served", "this visitor was not shown campaign {campaign}: view it first"),
}

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Campaign {campaign}</title></head>
<body><main data-campaign="{campaign}" data-quarter="{quarter}" data-banner="{banner}">
<img src="{src}" alt="banner {banner}" width="300" height="250">
</main></body></html>
"""
NOT_FOUND_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Not found</title></head>
<body><h1>No such campaign</h1><p>Campaign {campaign} has no banners right now.</p></body></html>
"""


class MintRequest(BaseModel):
    count: int = Field(
        ge=1,
        description="how many codes to mint (at most BANNER_MAX_MINT)",
        json_schema_extra={MAXIMUM_SETTING: "MAX_MINT"},
    )


class Banner(BaseModel):
    campaign_id: int
    quarter: int
    banner_id: int
    image_url: str


class BannerSetOut(BaseModel):
    campaign_id: int
    quarter: int
    x: int
    rule: str
    banners: list[int]


class Minted(BaseModel):
    campaign_id: int
    minted: int
    available: int


class Claimed(BaseModel):
    campaign_id: int
    code: str


_HTML_404: dict[int | str, dict[str, Any]] = {
    404: {"description": "no banners in this quarter", "content": {"text/html": {}}}
}


def _catalog(request: Request) -> Catalog:
    catalog: Catalog = request.app.state.catalog
    return catalog


def _cookies(request: Request) -> VisitorCookies:
    cookies: VisitorCookies = request.app.state.visitor_cookies
    return cookies


def _current(request: Request, campaign_id: int) -> BannerSet | None:
    return _catalog(request).current(quarter_of(dt.datetime.now(dt.UTC)), campaign_id)


def _choose(banner_set: BannerSet, visitor: Visitor) -> int:
    PICKS.labels(banner_set.rule).inc()
    """Uniform among the set, never the banner this visitor saw last (unless it is the only one)."""
    last = visitor.last_banner(banner_set.campaign_id)
    choices = [b for b in banner_set.banners if b != last] or list(banner_set.banners)
    chosen = _pick.choice(choices)
    visitor.saw(banner_set.campaign_id, chosen)
    return chosen


def _remember(request: Request, response: Response, visitor: Visitor) -> Response:
    if visitor.changed:
        response.headers.append("set-cookie", _cookies(request).set_cookie(visitor))
    return response


@router.get("/campaigns/{campaign_id}", response_class=HTMLResponse, responses=_HTML_404)
async def campaign_page(campaign_id: CampaignId, request: Request) -> Response:
    banner_set = _current(request, campaign_id)
    if banner_set is None:
        return HTMLResponse(NOT_FOUND_PAGE.format(campaign=campaign_id), status_code=404)
    visitor = _cookies(request).read(request.cookies.get(COOKIE))
    banner = _choose(banner_set, visitor)
    page = PAGE.format(
        campaign=campaign_id,
        quarter=banner_set.quarter,
        banner=banner,
        src=html.escape(f"/images/image_{banner}.png"),
    )
    return _remember(request, HTMLResponse(page), visitor)


@router.get(
    "/api/campaigns/{campaign_id}/banner",
    responses={**problem_responses(404), 200: {"model": Banner}},
)
async def campaign_banner(campaign_id: CampaignId, request: Request) -> Response:
    banner_set = _current(request, campaign_id)
    if banner_set is None:
        raise NotFound(f"campaign {campaign_id} has no banners in this quarter")
    visitor = _cookies(request).read(request.cookies.get(COOKIE))
    banner = _choose(banner_set, visitor)
    body = {
        "campaign_id": campaign_id,
        "quarter": banner_set.quarter,
        "banner_id": banner,
        "image_url": f"/images/image_{banner}.png",
    }
    return _remember(request, OrjsonResponse(body), visitor)


@router.get(
    "/api/campaigns/{campaign_id}/banners",
    responses={**problem_responses(404), 200: {"model": BannerSetOut}},
)
async def campaign_banners(
    campaign_id: CampaignId,
    request: Request,
    quarter: Annotated[
        int | None, Query(ge=1, le=4, description="default: the current one")
    ] = None,
) -> Response:
    if quarter is None:
        banner_set = _current(request, campaign_id)
    else:
        banner_set = _catalog(request).current(quarter, campaign_id)
    if banner_set is None:
        raise NotFound(f"campaign {campaign_id} has no banners in that quarter")
    banners = list(banner_set.banners)
    _pick.shuffle(banners)
    return OrjsonResponse(
        {
            "campaign_id": campaign_id,
            "quarter": banner_set.quarter,
            "x": banner_set.x,
            "rule": banner_set.rule,
            "banners": banners,
        }
    )


@router.api_route(
    "/images/{name}",
    methods=["GET", "HEAD"],
    responses={
        **problem_responses(404),
        200: {"description": "the image", "content": {"image/png": {}, "image/jpeg": {}}},
        304: {"description": "not modified (If-None-Match)"},
    },
)
async def image(name: ImageName, request: Request) -> Response:
    banner_id = int(name.removeprefix("image_").removesuffix(".png"))
    if banner_id not in _catalog(request).banner_ids:
        raise NotFound(f"no banner {banner_id}")
    store: ImageStore = request.app.state.images
    found = await store.get(banner_id)
    headers = {"ETag": found.etag, "Cache-Control": "public, max-age=86400, immutable"}
    if request.headers.get("if-none-match") == found.etag:
        return Response(status_code=304, headers=headers)
    return Response(found.body, media_type=found.content_type, headers=headers)


@router.post(
    "/api/campaigns/{campaign_id}/gift-codes",
    status_code=201,
    dependencies=[Depends(require_admin)],
    responses={**problem_responses(400, 401, 404), 201: {"model": Minted}},
)
async def mint_gift_codes(
    campaign_id: CampaignId,
    body: MintRequest,
    request: Request,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    limit: int = request.app.state.settings.MAX_MINT
    if body.count > limit:
        raise BadInput(f"at most {limit} codes per request")
    if campaign_id not in _catalog(request).campaign_ids:
        raise NotFound(f"no campaign {campaign_id}")
    codes: GiftCodes = request.app.state.gift_codes
    result = await codes.mint(campaign_id, body.count, key=idempotency_key)
    if result.requested != body.count:
        raise Unprocessable(
            f"this Idempotency-Key was used for a mint of {result.requested} codes of campaign"
            f" {campaign_id}, not {body.count}"
        )
    headers = {"Idempotent-Replayed": "true"} if result.replayed else None
    return OrjsonResponse(
        {"campaign_id": campaign_id, "minted": result.minted, "available": result.available},
        status_code=201,
        headers=headers,
    )


@router.post(
    "/api/campaigns/{campaign_id}/gift-code",
    responses={**problem_responses(403, 404, 410, 503), 200: {"model": Claimed}},
)
async def claim_gift_code(campaign_id: CampaignId, request: Request) -> Response:
    if campaign_id not in _catalog(request).campaign_ids:
        raise NotFound(f"no campaign {campaign_id}")
    visitor = _cookies(request).read(request.cookies.get(COOKIE))
    if not visitor.served(campaign_id):
        # Not farmable: the claimant is a visitor this service served the campaign to (the
        # signed cookie says so), not whoever posts. Nothing is written: no state, no cookie.
        reason, detail = NOT_SERVED[visitor.origin]
        return problem(403, detail.format(campaign=campaign_id), reason=reason)
    codes: GiftCodes = request.app.state.gift_codes
    # A 503 (MySQL did not confirm) may hide a claim MySQL recorded: the same visitor asking
    # again gets it, and the visitor already holds its cookie (its banner view gave it).
    code = await codes.claim(campaign_id, visitor.id)
    return OrjsonResponse({"campaign_id": campaign_id, "code": code})
