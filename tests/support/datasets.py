"""The banner datasets the test cluster serves side by side (their ids never overlap).

- generated: `python -m services.banner.generate` with the demo seed, written by the cluster's own
  start into its state directory. Always there, so a bare clone proves every rule.
- DataChef's original: their data, never copied into the repository. Found through
  `QUARTET_DATACHEF_DIR` (default: `../shared/datasets/banners` beside the repository); the tests
  that read it report themselves skipped, with that reason, when it is absent.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DATACHEF_DIR = Path(
    os.environ.get("QUARTET_DATACHEF_DIR") or REPO.parent / "shared" / "datasets" / "banners"
).resolve()


@dataclass(frozen=True)
class Dataset:
    name: str
    directory: Path
    # A campaign that serves a full set of ten in every quarter: for rotation and picks.
    busy_campaign: int


def datachef_present() -> bool:
    return all((DATACHEF_DIR / str(q)).is_dir() for q in (1, 2, 3, 4))


def generated(directory: Path) -> Dataset:
    # 1002 is "large": at least 14 banners, a TEN/OVER_TEN/TIE role in most quarters.
    return Dataset("generated", directory, busy_campaign=1002)


def datachef() -> Dataset:
    """DataChef's dataset, or a skip that says where it was looked for and how to point at it."""
    if not datachef_present():
        pytest.skip(
            f"DataChef's banner dataset is not in {DATACHEF_DIR} "
            "(set QUARTET_DATACHEF_DIR to its folder to run this test)"
        )
    return Dataset("datachef", DATACHEF_DIR, busy_campaign=1)
