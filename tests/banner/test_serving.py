"""The banner service as users reach it, through the gateway, serving each dataset: the generated
one always, DataChef's original when it is there (tests/support/datasets.py).
Tests that send hundreds of requests use the gateway's internal listener (same routes, no
limits)."""

from __future__ import annotations

import re
from collections import Counter
from itertools import pairwise

import httpx
import pytest

from tests.banner.reference import expected_sets
from tests.support.cluster import RunningCluster
from tests.support.datasets import Dataset

# DataChef's: the sets the assignment publishes for campaign 1.
Q1_CAMPAIGN_1 = {371, 125, 467, 300, 458, 187, 283, 414, 465, 170}
Q4_CAMPAIGN_1 = {378, 358, 123, 170, 451, 429, 308, 284, 220, 470}
# The generated dataset's: the role plan services/banner/dataset_plan.py documents (default 24
# campaigns, any seed): per quarter, campaign -> (rule, lowest X, highest X).
RULES = {
    "TEN": ("top10_by_revenue", 10, 10),
    "OVER_TEN": ("top10_by_revenue", 11, 13),
    "TIE": ("top10_by_revenue", 11, 13),
    "SOME": ("top_x_by_revenue", 5, 9),
    "FEW": ("revenue_then_clicks", 1, 4),
    "CLICKED": ("top5_by_clicks", 0, 0),
    "SPARSE": ("clicks_then_random", 0, 0),
}
# fmt: off
ROLE_PLAN = {
    1: {1002: "TEN", 1005: "OVER_TEN", 1008: "TIE", 1011: "TIE", 1003: "SOME", 1004: "FEW",
        1006: "FEW", 1007: "CLICKED", 1009: "SPARSE", 1001: "FEW"},
    2: {1011: "TEN", 1014: "OVER_TEN", 1017: "TIE", 1020: "TIE", 1007: "SOME", 1009: "FEW",
        1010: "FEW", 1012: "CLICKED", 1013: "SPARSE", 1001: "SPARSE"},
    3: {1020: "TEN", 1023: "OVER_TEN", 1002: "TIE", 1005: "TIE", 1012: "SOME", 1013: "FEW",
        1015: "FEW", 1016: "CLICKED", 1018: "SPARSE", 1001: "SPARSE"},
    4: {1005: "TEN", 1008: "OVER_TEN", 1011: "TIE", 1014: "TIE", 1016: "SOME", 1018: "FEW",
        1019: "FEW", 1021: "CLICKED", 1022: "SPARSE", 1001: "FEW"},
}
# fmt: on
SHOWN = re.compile(r'data-quarter="(\d)" data-banner="(\d+)"')


async def _served_set(client: httpx.AsyncClient, quarter: int, campaign: int) -> dict[str, object]:
    response = await client.get(f"/api/campaigns/{campaign}/banners", params={"quarter": quarter})
    assert response.status_code == 200, response.text
    body: dict[str, object] = response.json()
    return body


async def test_the_assignments_published_sets(
    cluster: RunningCluster, datachef_dataset: Dataset
) -> None:
    async with httpx.AsyncClient(base_url=cluster.gateway) as client:
        q1 = await _served_set(client, 1, 1)
        q4 = await _served_set(client, 4, 1)
    assert set(q1["banners"]) == Q1_CAMPAIGN_1  # type: ignore[call-overload]
    assert set(q4["banners"]) == Q4_CAMPAIGN_1  # type: ignore[call-overload]
    assert q1["rule"] == "top10_by_revenue"


@pytest.mark.parametrize("quarter", [1, 2, 3, 4])
async def test_the_generated_role_plan_reaches_every_rule(
    cluster: RunningCluster, quarter: int
) -> None:
    rules_seen = set()
    async with httpx.AsyncClient(base_url=cluster.gateway) as client:
        for campaign, role in ROLE_PLAN[quarter].items():
            served = await _served_set(client, quarter, campaign)
            rule, low, high = RULES[role]
            assert served["rule"] == rule, (campaign, role, served)
            assert low <= served["x"] <= high, (campaign, role, served)  # type: ignore[operator]
            rules_seen.add(rule)
    assert rules_seen == {rule for rule, _, _ in RULES.values()}


@pytest.mark.parametrize("quarter", [1, 2, 3, 4])
async def test_every_campaigns_set_matches_an_independent_reading(
    cluster: RunningCluster, dataset: Dataset, quarter: int
) -> None:
    expected = expected_sets(dataset.directory, quarter)
    assert len(expected) >= 20
    async with httpx.AsyncClient(base_url=cluster.internal) as client:
        for campaign, want in sorted(expected.items()):
            served = await _served_set(client, quarter, campaign)
            banners = served["banners"]
            assert isinstance(banners, list)
            assert served["x"] == want.x, campaign
            assert served["rule"] == want.rule, campaign
            assert len(banners) == want.size == len(set(banners)), campaign
            if want.size == len(want.ranked):
                assert set(banners) == set(want.ranked), campaign
            else:
                # Random fill: the ranked banners, then other banners of the campaign.
                assert set(want.ranked) <= set(banners) <= want.campaign_banners, campaign


async def test_a_visitor_never_sees_the_same_banner_twice_in_a_row(
    cluster: RunningCluster, dataset: Dataset
) -> None:
    campaign = dataset.busy_campaign
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
    assert "banner_picks_total{rule=" in picks


async def test_json_pick_and_cookie(cluster: RunningCluster, dataset: Dataset) -> None:
    url = f"/api/campaigns/{dataset.busy_campaign}/banner"
    async with httpx.AsyncClient(base_url=cluster.gateway) as client:
        first = await client.get(url)
        second = await client.get(url)
    for response in (first, second):
        assert response.status_code == 200
        body = response.json()
        assert set(body) == {"campaign_id", "quarter", "banner_id", "image_url"}
        assert body["campaign_id"] == dataset.busy_campaign
        assert body["image_url"] == f"/images/image_{body['banner_id']}.png"
    assert "httponly" in first.headers["set-cookie"].lower()
    assert first.json()["banner_id"] != second.json()["banner_id"]


async def test_images_are_sniffed_and_cacheable(cluster: RunningCluster, dataset: Dataset) -> None:
    async with httpx.AsyncClient(base_url=cluster.gateway) as client:
        served = await _served_set(client, 1, dataset.busy_campaign)
        banners = sorted(served["banners"])  # type: ignore[call-overload]
        odd = next(b for b in banners if b % 2)
        even = [b for b in banners if b % 2 == 0]
        for banner in [odd, *even[:1]]:
            path = f"/images/image_{banner}.png"
            image = await client.get(path)
            again = await client.get(path, headers={"If-None-Match": image.headers["etag"]})
            head = await client.head(path)
            file = (dataset.directory / "images" / f"image_{banner}.png").read_bytes()
            assert image.status_code == 200
            assert image.content == file
            # The type comes from the bytes: DataChef's .png files are all JPEG; the generated
            # ones are JPEG for odd ids, PNG for even ones.
            want = "image/jpeg" if file.startswith(b"\xff\xd8\xff") else "image/png"
            if dataset.name == "generated":
                assert want == ("image/jpeg" if banner % 2 else "image/png")
            assert image.headers["content-type"] == want
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
