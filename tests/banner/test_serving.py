"""The banner service as users reach it, through the gateway, serving the original dataset.
Tests that send hundreds of requests use the gateway's internal listener (same routes, no
limits)."""

from __future__ import annotations

import re
from collections import Counter
from itertools import pairwise

import httpx
import pytest

from tests.banner.reference import expected_sets
from tests.support.cluster import ORIGINAL_BANNERS, RunningCluster

Q1_CAMPAIGN_1 = {371, 125, 467, 300, 458, 187, 283, 414, 465, 170}
Q4_CAMPAIGN_1 = {378, 358, 123, 170, 451, 429, 308, 284, 220, 470}
SHOWN = re.compile(r'data-quarter="(\d)" data-banner="(\d+)"')


async def _served_set(client: httpx.AsyncClient, quarter: int, campaign: int) -> dict[str, object]:
    response = await client.get(f"/api/campaigns/{campaign}/banners", params={"quarter": quarter})
    assert response.status_code == 200, response.text
    body: dict[str, object] = response.json()
    return body


async def test_the_assignments_published_sets(cluster: RunningCluster) -> None:
    async with httpx.AsyncClient(base_url=cluster.gateway) as client:
        q1 = await _served_set(client, 1, 1)
        q4 = await _served_set(client, 4, 1)
    assert set(q1["banners"]) == Q1_CAMPAIGN_1  # type: ignore[call-overload]
    assert set(q4["banners"]) == Q4_CAMPAIGN_1  # type: ignore[call-overload]
    assert q1["rule"] == "top10_by_revenue"


@pytest.mark.parametrize("quarter", [1, 2, 3, 4])
async def test_every_campaigns_set_matches_an_independent_reading(
    cluster: RunningCluster, quarter: int
) -> None:
    expected = expected_sets(ORIGINAL_BANNERS, quarter)
    assert len(expected) >= 40
    async with httpx.AsyncClient(base_url=cluster.internal) as client:
        for campaign, want in sorted(expected.items()):
            served = await _served_set(client, quarter, campaign)
            banners = served["banners"]
            assert isinstance(banners, list)
            assert served["x"] == want.x, campaign
            assert len(banners) == want.size == len(set(banners)), campaign
            if want.size == len(want.ranked):
                assert set(banners) == set(want.ranked), campaign
            else:
                # Random fill: the ranked banners, then other banners of the campaign.
                assert set(want.ranked) <= set(banners) <= want.campaign_banners, campaign


async def test_a_visitor_never_sees_the_same_banner_twice_in_a_row(
    cluster: RunningCluster,
) -> None:
    campaign = 1
    async with httpx.AsyncClient(base_url=cluster.internal) as client:
        sets = {q: set((await _served_set(client, q, campaign))["banners"]) for q in (1, 2, 3, 4)}  # type: ignore[call-overload]
        seen: list[tuple[int, int]] = []
        for _ in range(1000):
            page = await client.get(f"/campaigns/{campaign}")
            assert page.status_code == 200
            assert page.headers["content-type"].startswith("text/html")
            match = SHOWN.search(page.text)
            assert match is not None, page.text
            seen.append((int(match[1]), int(match[2])))
    for (_, before), (_, after) in pairwise(seen):
        assert before != after
    for quarter, banner in seen:
        assert banner in sets[quarter]
    # The run may straddle a quarter boundary: judge coverage in the quarter most requests hit.
    main_quarter, count = Counter(q for q, _ in seen).most_common(1)[0]
    if count >= 200:
        assert {b for q, b in seen if q == main_quarter} == sets[main_quarter]
    async with httpx.AsyncClient() as client:
        picks = (await client.get(f"{cluster.instance_url('banner_1')}/metrics")).text
    assert 'banner_picks_total{rule="top10_by_revenue"}' in picks


async def test_json_pick_and_cookie(cluster: RunningCluster) -> None:
    async with httpx.AsyncClient(base_url=cluster.gateway) as client:
        first = await client.get("/api/campaigns/1/banner")
        second = await client.get("/api/campaigns/1/banner")
    for response in (first, second):
        assert response.status_code == 200
        body = response.json()
        assert set(body) == {"campaign_id", "quarter", "banner_id", "image_url"}
        assert body["image_url"] == f"/images/image_{body['banner_id']}.png"
    assert "httponly" in first.headers["set-cookie"].lower()
    assert first.json()["banner_id"] != second.json()["banner_id"]


async def test_images_are_sniffed_and_cacheable(cluster: RunningCluster) -> None:
    async with httpx.AsyncClient(base_url=cluster.gateway) as client:
        image = await client.get("/images/image_125.png")
        again = await client.get(
            "/images/image_125.png", headers={"If-None-Match": image.headers["etag"]}
        )
        head = await client.head("/images/image_125.png")
    assert image.status_code == 200
    assert image.headers["content-type"] == "image/jpeg"  # JPEG bytes despite the name
    assert image.content == (ORIGINAL_BANNERS / "images" / "image_125.png").read_bytes()
    assert "max-age=86400" in image.headers["cache-control"]
    assert again.status_code == 304
    assert head.status_code == 200


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/campaigns/abc", 422),
        ("/campaigns/-1", 422),
        ("/campaigns/0", 422),
        ("/campaigns/99999999999999999999", 422),
        ("/campaigns/987654", 404),
        ("/api/campaigns/1.5/banner", 422),
        ("/api/campaigns/987654/banner", 404),
        ("/api/campaigns/1/banners?quarter=5", 422),
        ("/images/image_abc.png", 422),
        ("/images/image_0125.png", 422),
        ("/images/image_125.jpg", 422),
        ("/images/..%2F..%2Fetc%2Fpasswd", 400),
        ("/images/image_99999.png", 404),
    ],
)
async def test_bad_input_is_a_4xx(cluster: RunningCluster, path: str, status: int) -> None:
    async with httpx.AsyncClient(base_url=cluster.gateway) as client:
        response = await client.get(path)
    assert response.status_code == status
    if path == "/campaigns/987654":
        assert "No such campaign" in response.text  # an HTML page for a browser
    else:
        assert response.json()["status"] == status
