"""The banner's routes: each reads its request, calls the domain objects in BannerState, and
builds its answer."""

from __future__ import annotations

import html
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Path, Query, Request
from pydantic import BaseModel, Field
from starlette.responses import HTMLResponse, Response

from services.banner import picking
from services.banner.catalog import Catalog
from services.banner.giftcodes import GiftCodes
from services.banner.images import ImageStore
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
from services.common.state import StateSlot


@dataclass(frozen=True)
class BannerState:
    """What the routes use, built by the app's lifespan (app.py)."""

    catalog: Catalog
    images: ImageStore
    cookies: VisitorCookies
    gift_codes: GiftCodes
    max_mint: int  # BANNER_MAX_MINT


router = APIRouter()
BANNER = StateSlot(BannerState)
State = Annotated[BannerState, Depends(BANNER.of)]
CampaignId = Annotated[int, Path(ge=1, le=2**32 - 1, description="a positive integer")]
ImageName = Annotated[str, Path(pattern=r"^image_[1-9][0-9]{0,9}\.png$")]
# The admin's name for one mint (draft-ietf-httpapi-idempotency-key-header): visible ASCII,
# compared exactly, scoped to the campaign, remembered for minting.MINT_KEY_RETENTION_S.
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

# The empty icon link: without one every browser asks the gateway for /favicon.ico on every view
# (a 404 that counts against the visitor's rate limit).
PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><link rel="icon" href="data:,">
<title>Campaign {campaign}</title></head>
<body><main data-campaign="{campaign}" data-quarter="{quarter}" data-banner="{banner}">
<img src="{src}" alt="banner {banner}" width="300" height="250">
</main></body></html>
"""
NOT_FOUND_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><link rel="icon" href="data:,">
<title>Not found</title></head>
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


def _visitor(state: BannerState, request: Request) -> Visitor:
    return state.cookies.read(request.cookies.get(COOKIE))


def _remember(state: BannerState, response: Response, visitor: Visitor) -> Response:
    if visitor.changed:
        response.headers.append("set-cookie", state.cookies.set_cookie(visitor))
    return response


@router.get("/campaigns/{campaign_id}", response_class=HTMLResponse, responses=_HTML_404)
async def campaign_page(campaign_id: CampaignId, request: Request, state: State) -> Response:
    banner_set = picking.current_set(state.catalog, campaign_id)
    if banner_set is None:
        return HTMLResponse(NOT_FOUND_PAGE.format(campaign=campaign_id), status_code=404)
    visitor = _visitor(state, request)
    banner = picking.choose(banner_set, visitor)
    page = PAGE.format(
        campaign=campaign_id,
        quarter=banner_set.quarter,
        banner=banner,
        src=html.escape(f"/images/image_{banner}.png"),
    )
    return _remember(state, HTMLResponse(page), visitor)


@router.get(
    "/api/campaigns/{campaign_id}/banner",
    responses={**problem_responses(404), 200: {"model": Banner}},
)
async def campaign_banner(campaign_id: CampaignId, request: Request, state: State) -> Response:
    banner_set = picking.current_set(state.catalog, campaign_id)
    if banner_set is None:
        raise NotFound(f"campaign {campaign_id} has no banners in this quarter")
    visitor = _visitor(state, request)
    banner = picking.choose(banner_set, visitor)
    body = {
        "campaign_id": campaign_id,
        "quarter": banner_set.quarter,
        "banner_id": banner,
        "image_url": f"/images/image_{banner}.png",
    }
    return _remember(state, OrjsonResponse(body), visitor)


@router.get(
    "/api/campaigns/{campaign_id}/banners",
    responses={**problem_responses(404), 200: {"model": BannerSetOut}},
)
async def campaign_banners(
    campaign_id: CampaignId,
    state: State,
    quarter: Annotated[
        int | None, Query(ge=1, le=4, description="default: the current one")
    ] = None,
) -> Response:
    banner_set = picking.current_set(state.catalog, campaign_id, quarter)
    if banner_set is None:
        raise NotFound(f"campaign {campaign_id} has no banners in that quarter")
    return OrjsonResponse(
        {
            "campaign_id": campaign_id,
            "quarter": banner_set.quarter,
            "x": banner_set.x,
            "rule": banner_set.rule,
            "banners": picking.shuffled(banner_set),
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
async def image(name: ImageName, request: Request, state: State) -> Response:
    banner_id = int(name.removeprefix("image_").removesuffix(".png"))
    if banner_id not in state.catalog.banner_ids:
        raise NotFound(f"no banner {banner_id}")
    found = await state.images.get(banner_id)
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
    state: State,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    if body.count > state.max_mint:
        raise BadInput(f"at most {state.max_mint} codes per request")
    if campaign_id not in state.catalog.campaign_ids:
        raise NotFound(f"no campaign {campaign_id}")
    result = await state.gift_codes.mint(campaign_id, body.count, key=idempotency_key)
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
async def claim_gift_code(campaign_id: CampaignId, request: Request, state: State) -> Response:
    if campaign_id not in state.catalog.campaign_ids:
        raise NotFound(f"no campaign {campaign_id}")
    visitor = _visitor(state, request)
    if not visitor.served(campaign_id):
        # Not farmable: the claimant is a visitor this service served the campaign to (the
        # signed cookie says so), not whoever posts. Nothing is written: no state, no cookie.
        reason, detail = NOT_SERVED[visitor.origin]
        return problem(403, detail.format(campaign=campaign_id), reason=reason)
    # A 503 (MySQL did not confirm) may hide a claim MySQL recorded: the same visitor asking
    # again gets it, and the visitor already holds its cookie (its banner view gave it).
    code = await state.gift_codes.claim(campaign_id, visitor.id)
    return OrjsonResponse({"campaign_id": campaign_id, "code": code})
