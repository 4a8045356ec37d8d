"""The campaign page as a visitor's browser gets it: Debian's chromium, headless, through the
gateway's public listener, on the generated dataset (tests/support/headless_chromium.py).

One page load and ten reloads in one profile: 11 pages and at most 11 images (the page links an
empty icon, so the browser asks no /favicon.ico), well inside the per-client burst of 50.
"""

from __future__ import annotations

import io
from itertools import pairwise
from typing import Any

import httpx
import pytest
from PIL import Image, ImageChops, ImageStat

from tests.support import headless_chromium, strict_html
from tests.support.artifacts import artifact_path
from tests.support.cluster import RunningCluster
from tests.support.datasets import Dataset

RELOADS = 10
# What the page says about its banner, read in the page after the load event.
SHOWN = """(() => {
  const main = document.querySelector("main[data-banner]");
  const img = main.querySelector("img");
  const box = img.getBoundingClientRect();
  return {
    banner: Number(main.dataset.banner), quarter: Number(main.dataset.quarter),
    src: img.getAttribute("src"), alt: img.getAttribute("alt"),
    complete: img.complete, natural: [img.naturalWidth, img.naturalHeight],
    box: [box.left, box.top, box.width, box.height],
  };
})()"""


def alt_text(banner: int) -> str:
    """The page's alt text for a banner, as its contract states it (docs/banner.md, Serving),
    written out here so that a change to the page is a deliberate change to this test."""
    return f"banner {banner}"


async def _served_sets(cluster: RunningCluster, campaign: int) -> dict[int, set[int]]:
    # The internal listener: these calls are the test's bookkeeping, not the visitor's traffic.
    async with httpx.AsyncClient(base_url=cluster.internal, timeout=10) as api:
        sets = {}
        for quarter in (1, 2, 3, 4):
            answer = await api.get(
                f"/api/campaigns/{campaign}/banners", params={"quarter": quarter}
            )
            answer.raise_for_status()
            sets[quarter] = set(answer.json()["banners"])
    return sets


def _dataset_image(dataset: Dataset, banner: int) -> Image.Image:
    with Image.open(dataset.directory / "images" / f"image_{banner}.png") as image:
        return image.convert("RGB")


async def _shown(tab: headless_chromium.Tab, dataset: Dataset, sets: dict[int, set[int]]) -> int:
    """The banner on the page, after checking that its image loaded and is the dataset's."""
    page: Any = await tab.evaluate(SHOWN)
    banner = page["banner"]
    assert banner in sets[page["quarter"]], page
    assert page["src"] == f"/images/image_{banner}.png", page
    assert page["alt"] == alt_text(banner), page
    assert page["complete"], page
    natural = tuple(page["natural"])
    assert natural[0] > 0, page
    assert natural == _dataset_image(dataset, banner).size, page
    return int(banner)


def _check_screenshot(png: bytes, expected: Image.Image, box: list[float]) -> Image.Image:
    """The screenshot is a real 800x600 image, not one colour, and where the page put the
    banner it shows the dataset's image (within decoders' rounding: odd ids are JPEG)."""
    shot = Image.open(io.BytesIO(png))
    shot.load()
    assert shot.format == "PNG"
    assert shot.size == (800, 600)
    assert shot.getcolors(maxcolors=1) is None, "the screenshot is a single colour"
    left, top, width, height = (round(v) for v in box)
    painted = shot.convert("RGB").crop((left, top, left + width, top + height))
    difference = ImageStat.Stat(ImageChops.difference(painted, expected.resize(painted.size)))
    assert max(difference.mean) < 8, f"the painted banner differs: mean {difference.mean}"
    return shot


def _visitor_id(cookies: dict[str, str]) -> str:
    # quartet_visitor = <visitor id>~<issued>~<campaign>_<banner>-... then its signature.
    return cookies["quartet_visitor"].split("~", 1)[0]


async def test_the_campaign_page_in_a_real_browser(cluster: RunningCluster) -> None:
    dataset = cluster.generated_banners
    campaign = dataset.busy_campaign
    sets = await _served_sets(cluster, campaign)
    assert all(len(banners) >= 2 for banners in sets.values()), sets
    url = f"{cluster.gateway}/campaigns/{campaign}"

    async with headless_chromium.launch(800, 600) as tab:
        await tab.open(url)
        shown = [await _shown(tab, dataset, sets)]
        visitor = _visitor_id(await tab.cookies())
        document = strict_html.parse(await tab.document_source())
        for _ in range(RELOADS):
            await tab.reload()
            shown.append(await _shown(tab, dataset, sets))
            # The same visitor throughout: the profile kept the cookie.
            assert _visitor_id(await tab.cookies()) == visitor
        last: Any = await tab.evaluate(SHOWN)
        png = await tab.screenshot()
        problems = list(tab.problems)

    repeats = [(i, a) for i, (a, b) in enumerate(pairwise(shown)) if a == b]
    assert not repeats, f"the same banner twice in a row: {shown}"
    assert not problems, problems

    assert document.lang == "en"
    assert document.title == f"Campaign {campaign}"
    assert len(document.images) == 1, document.images
    assert document.images[0]["alt"] == alt_text(shown[0])

    shot = _check_screenshot(png, _dataset_image(dataset, shown[-1]), last["box"])
    path = artifact_path(f"campaign-{campaign}.png")
    shot.save(path)
    print(f"screenshot of {url} (banner {shown[-1]}): {path}")


async def test_the_browser_reports_an_error_page(cluster: RunningCluster) -> None:
    """The problem list can fail the test above: an unknown campaign's page is a 404."""
    url = f"{cluster.gateway}/campaigns/987654"
    async with headless_chromium.launch() as tab:
        await tab.open(url)
        document = strict_html.parse(await tab.document_source())
        problems = list(tab.problems)
    assert f"HTTP 404: {url}" in problems, problems
    assert document.title == "Not found"
    assert document.images == []


@pytest.mark.parametrize(
    ("page", "error"),
    [
        ("<html><title>t</title></html>", "Expected DOCTYPE"),
        ('<!DOCTYPE html PUBLIC "-//W3C//DTD HTML 4.01//EN"><title>t</title>', "DOCTYPE"),
        ("<!doctype html><title>t</title><main><img src=a alt=b></div>", "end tag"),
        ("<!doctype html><title>t</title><img src=a src=b alt=c>", "duplicate attribute"),
        ("<!doctype html><title>t</title><main>", "end of file"),
    ],
)
def test_the_html_check_fails_on_what_a_browser_would_repair(page: str, error: str) -> None:
    with pytest.raises(AssertionError, match=error):
        strict_html.parse(page)
