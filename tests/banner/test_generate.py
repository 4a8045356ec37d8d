"""The synthetic banner dataset, checked from its CSV and PNG files alone: the layout, the
determinism, the referential integrity, the id ranges, and that every branch of the serving rules
occurs in every quarter of the default data."""

from __future__ import annotations

import csv
import hashlib
import io
import re
import struct
import subprocess
import sys
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import pytest
from PIL import Image

from services.banner.generate import generate

ROOT = Path(__file__).resolve().parents[2]
QUARTERS = (1, 2, 3, 4)
HEADERS = {
    "impressions": "banner_id,campaign_id",
    "clicks": "click_id,banner_id,campaign_id",
    "conversions": "conversion_id,click_id,revenue",
}
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
REVENUE = re.compile(r"^\d+\.\d{6}$")
BRANCHES = {
    "X = 10",
    "X > 10",
    "X 5..9",
    "X 1..4, others clicked enough",
    "X 1..4, random fill",
    "X 0, 5 or more clicked",
    "X 0, fewer than 5 clicked",
    "revenue tie at the cut, clicks decide",
    "revenue and clicks tie at the cut, id decides",
    "fewer than 5 banners",
}


@dataclass(frozen=True)
class Quarter:
    impressions: list[tuple[int, int]]  # (banner_id, campaign_id)
    clicks: list[tuple[int, int, int]]  # (click_id, banner_id, campaign_id)
    conversions: list[tuple[int, int, Decimal]]  # (conversion_id, click_id, revenue)


@dataclass
class CampaignStats:
    banners: set[int] = field(default_factory=set)
    clicks: Counter[int] = field(default_factory=Counter)
    revenue: defaultdict[int, Decimal] = field(default_factory=lambda: defaultdict(Decimal))

    @property
    def x(self) -> int:
        return len(self.revenue)

    def by_revenue(self) -> list[int]:
        return sorted(self.revenue, key=lambda b: (-self.revenue[b], -self.clicks[b], b))


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("banners") / "default"
    generate(out)
    return out


@pytest.fixture(scope="module")
def quarters(dataset: Path) -> dict[int, Quarter]:
    return {q: read_quarter(dataset, q) for q in QUARTERS}


def read_rows(path: Path) -> list[list[str]]:
    with path.open(newline="", encoding="utf-8") as source:
        return list(csv.reader(source))[1:]


def read_quarter(root: Path, q: int) -> Quarter:
    return Quarter(
        impressions=[(int(b), int(c)) for b, c in read_rows(root / f"{q}/impressions_{q}.csv")],
        clicks=[(int(i), int(b), int(c)) for i, b, c in read_rows(root / f"{q}/clicks_{q}.csv")],
        conversions=[
            (int(i), int(click), Decimal(revenue))
            for i, click, revenue in read_rows(root / f"{q}/conversions_{q}.csv")
        ],
    )


def campaign_stats(quarter: Quarter) -> dict[int, CampaignStats]:
    stats: defaultdict[int, CampaignStats] = defaultdict(CampaignStats)
    for banner_id, campaign_id in quarter.impressions:
        stats[campaign_id].banners.add(banner_id)
    clicked = {click_id: (b, c) for click_id, b, c in quarter.clicks}
    for banner_id, campaign_id in clicked.values():
        stats[campaign_id].clicks[banner_id] += 1
    for _, click_id, revenue in quarter.conversions:
        banner_id, campaign_id = clicked[click_id]
        stats[campaign_id].revenue[banner_id] += revenue
    return stats


def branches(stats: CampaignStats) -> set[str]:
    """The branches of the serving rules (and their edge cases) this campaign exercises."""
    x = stats.x
    clicked_others = sum(1 for b in stats.clicks if b not in stats.revenue)
    found = set()
    if x == 10:
        found.add("X = 10")
    elif x > 10:
        found.add("X > 10")
        tenth, eleventh = stats.by_revenue()[9:11]
        if stats.revenue[tenth] == stats.revenue[eleventh]:
            same_clicks = stats.clicks[tenth] == stats.clicks[eleventh]
            found.add(
                "revenue and clicks tie at the cut, id decides"
                if same_clicks
                else "revenue tie at the cut, clicks decide"
            )
    elif x >= 5:
        found.add("X 5..9")
    elif x >= 1:
        enough = x + clicked_others >= 5
        found.add("X 1..4, others clicked enough" if enough else "X 1..4, random fill")
    else:
        many = clicked_others >= 5
        found.add("X 0, 5 or more clicked" if many else "X 0, fewer than 5 clicked")
    if len(stats.banners) < 5:
        found.add("fewer than 5 banners")
    return found


def hashes(root: Path, pattern: str = "**/*") -> dict[str, str]:
    return {
        str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(root.glob(pattern))
        if path.is_file()
    }


def image_size(path: Path) -> tuple[int, int]:
    """The size of a PNG (even ids) or a JPEG under a .png name (odd ids, as in the original)."""
    data = path.read_bytes()
    banner_id = int(path.stem.removeprefix("image_"))
    if banner_id % 2 == 0:
        assert data[:8] == PNG_MAGIC, path
        assert data[12:16] == b"IHDR", path
        width, height = struct.unpack(">II", data[16:24])
        return width, height
    assert data[:3] == b"\xff\xd8\xff", path
    with Image.open(io.BytesIO(data)) as image:
        assert image.format == "JPEG", path
        return image.size


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "services.banner.generate", *args]
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)


def test_layout_and_headers(dataset: Path) -> None:
    expected = {f"{q}/{kind}_{q}.csv" for q in QUARTERS for kind in HEADERS}
    csvs = {str(p.relative_to(dataset)) for p in dataset.glob("*/*.csv")}
    assert csvs == expected
    for q in QUARTERS:
        for kind, header in HEADERS.items():
            with (dataset / f"{q}/{kind}_{q}.csv").open(newline="", encoding="utf-8") as f:
                assert f.readline() == header + "\n"


def test_an_image_per_banner(dataset: Path, quarters: dict[int, Quarter]) -> None:
    banners = {b for quarter in quarters.values() for b, _ in quarter.impressions}
    images = {p.name for p in (dataset / "images").iterdir()}
    assert images == {f"image_{b}.png" for b in banners}
    for banner_id in banners:
        assert image_size(dataset / f"images/image_{banner_id}.png") == (300, 250)


def test_revenue_is_positive_with_six_decimals(dataset: Path) -> None:
    for q in QUARTERS:
        revenues = [row[2] for row in read_rows(dataset / f"{q}/conversions_{q}.csv")]
        assert revenues
        assert all(REVENUE.match(r) and Decimal(r) > 0 for r in revenues)


def test_same_seed_same_bytes_other_seed_other_data(dataset: Path, tmp_path: Path) -> None:
    generate(tmp_path / "again")
    assert hashes(tmp_path / "again") == hashes(dataset)
    generate(tmp_path / "other", seed=8, images=False)
    other = hashes(tmp_path / "other", "*/*.csv")
    assert set(other) == set(hashes(dataset, "*/*.csv"))
    assert all(other[name] != digest for name, digest in hashes(dataset, "*/*.csv").items())


def test_conversions_belong_to_clicks_of_their_quarter(quarters: dict[int, Quarter]) -> None:
    for quarter in quarters.values():
        click_ids = {click_id for click_id, _, _ in quarter.clicks}
        converted = [click_id for _, click_id, _ in quarter.conversions]
        assert set(converted) <= click_ids
        assert len(set(converted)) == len(converted), "a click converts at most once"


def test_clicked_banners_were_shown_by_their_campaign(quarters: dict[int, Quarter]) -> None:
    for quarter in quarters.values():
        shown = set(quarter.impressions)
        assert {(b, c) for _, b, c in quarter.clicks} <= shown


def test_a_banner_belongs_to_one_campaign_and_shows_every_quarter(
    quarters: dict[int, Quarter],
) -> None:
    pairs = [set(quarter.impressions) for quarter in quarters.values()]
    assert all(p == pairs[0] for p in pairs)
    campaign_of: dict[int, int] = {}
    for banner_id, campaign_id in pairs[0]:
        assert campaign_of.setdefault(banner_id, campaign_id) == campaign_id
    assert len(set(campaign_of.values())) == 24


def test_ids_in_their_ranges_and_unique(quarters: dict[int, Quarter]) -> None:
    rows = list(quarters.values())
    campaigns = {c for quarter in rows for _, c in quarter.impressions}
    banners = {b for quarter in rows for b, _ in quarter.impressions}
    clicks = [i for quarter in rows for i, _, _ in quarter.clicks]
    conversions = [i for quarter in rows for i, _, _ in quarter.conversions]
    assert all(1001 <= c < 10_001 for c in campaigns)
    assert all(10_001 <= b < 900_000_001 for b in banners)
    assert all(900_000_001 <= i < 950_000_001 for i in clicks)
    assert min(conversions) >= 950_000_001
    assert len(set(clicks)) == len(clicks)
    assert len(set(conversions)) == len(conversions)


@pytest.mark.parametrize("q", QUARTERS)
def test_every_rule_branch_in_every_quarter(quarters: dict[int, Quarter], q: int) -> None:
    found = set().union(*(branches(s) for s in campaign_stats(quarters[q]).values()))
    assert found == BRANCHES


def test_too_few_impressions_writes_nothing(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="impressions=10 is too few"):
        generate(tmp_path, impressions=10)
    assert not any(tmp_path.iterdir())


def test_cli_writes_the_default_dataset(dataset: Path, tmp_path: Path) -> None:
    result = run_cli(str(tmp_path / "out"))
    assert result.returncode == 0, result.stderr
    assert [line.split(":")[0] for line in result.stdout.splitlines()[:4]] == [
        f"quarter {q}" for q in QUARTERS
    ]
    assert hashes(tmp_path / "out") == hashes(dataset)


def test_cli_refuses_a_non_empty_dir_without_force(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("keep me")
    refused = run_cli(str(tmp_path), "--no-images")
    assert refused.returncode != 0
    assert "--force" in refused.stderr
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]
    forced = run_cli(str(tmp_path), "--no-images", "--force")
    assert forced.returncode == 0, forced.stderr
    assert (tmp_path / "4/conversions_4.csv").is_file()
    assert (tmp_path / "notes.txt").read_text() == "keep me"


def test_cli_no_images(tmp_path: Path) -> None:
    result = run_cli(str(tmp_path / "out"), "--no-images", "--seed", "3")
    assert result.returncode == 0, result.stderr
    assert not (tmp_path / "out/images").exists()
    assert len(list((tmp_path / "out").glob("*/*.csv"))) == 12
