from __future__ import annotations

import datetime as dt
import html
import random
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request
from prometheus_client import Counter
from pydantic import BaseModel, Field
from starlette.responses import HTMLResponse, Response

from services.banner.catalog import Catalog
from services.banner.giftcodes import GiftCodes
from services.banner.images import ImageStore
from services.banner.rules import BannerSet, quarter_of
from services.banner.visitors import COOKIE, MAX_AGE_S, Visitor, VisitorCookies
from services.common.auth import require_admin
from services.common.problems import BadInput, NotFound, ServiceError, problem
from services.common.responses import OrjsonResponse

router = APIRouter()
PICKS = Counter(
    "banner_picks", "Banners served, by the rule that made the campaign's set", ["rule"]
)
CampaignId = Annotated[int, Path(ge=1, le=2**32 - 1, description="a positive integer")]
ImageName = Annotated[str, Path(pattern=r"^image_[1-9][0-9]{0,9}\.png$")]
_pick = random.Random()  # not for secrets: a fair pick among a handful of banners

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
    count: int = Field(ge=1, description="how many codes to mint")


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
        # Written by hand: the value holds only cookie-safe characters (visitors.py), and
        # starlette's set_cookie goes through http.cookies, a measurable cost on every view.
        value = _cookies(request).dump(visitor)
        response.headers.append(
            "set-cookie", f"{COOKIE}={value}; Max-Age={MAX_AGE_S}; Path=/; HttpOnly; SameSite=lax"
        )
    return response


@router.get("/campaigns/{campaign_id}", response_class=HTMLResponse)
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


@router.get("/api/campaigns/{campaign_id}/banner")
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


@router.get("/api/campaigns/{campaign_id}/banners")
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


@router.api_route("/images/{name}", methods=["GET", "HEAD"])
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
)
async def mint_gift_codes(campaign_id: CampaignId, body: MintRequest, request: Request) -> Response:
    limit: int = request.app.state.settings.MAX_MINT
    if body.count > limit:
        raise BadInput(f"at most {limit} codes per request")
    if campaign_id not in _catalog(request).campaign_ids:
        raise NotFound(f"no campaign {campaign_id}")
    codes: GiftCodes = request.app.state.gift_codes
    minted, available = await codes.mint(campaign_id, body.count)
    return OrjsonResponse(
        {"campaign_id": campaign_id, "minted": minted, "available": available}, status_code=201
    )


@router.post("/api/campaigns/{campaign_id}/gift-code")
async def claim_gift_code(campaign_id: CampaignId, request: Request) -> Response:
    if campaign_id not in _catalog(request).campaign_ids:
        raise NotFound(f"no campaign {campaign_id}")
    visitor = _cookies(request).read(request.cookies.get(COOKIE))
    codes: GiftCodes = request.app.state.gift_codes
    try:
        code = await codes.claim(campaign_id, visitor.id)
    except ServiceError as exc:
        # A 503 may hide a claim MySQL recorded: the retry must come from the same visitor to get
        # that code back, so a new visitor's cookie goes out with the problem too.
        failed = problem(exc.status, exc.detail, headers=exc.headers)
        return _remember(request, failed, visitor)
    return _remember(request, OrjsonResponse({"campaign_id": campaign_id, "code": code}), visitor)
