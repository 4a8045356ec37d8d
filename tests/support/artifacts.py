"""Where tests leave files for a person to look at after the run (screenshots): `test-artifacts/`
at the repository root (gitignored; a CI job keeps that one folder), or QUARTET_TEST_ARTIFACTS.
Not pytest's tmp_path, which is pruned after three runs and is hard to find."""

from __future__ import annotations

import os
from pathlib import Path

from tests.support.datasets import REPO


def artifact_path(name: str) -> Path:
    directory = Path(os.environ.get("QUARTET_TEST_ARTIFACTS") or REPO / "test-artifacts")
    directory.mkdir(parents=True, exist_ok=True)
    return directory / name
