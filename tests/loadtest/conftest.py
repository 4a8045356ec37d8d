"""loadtest/ is a flat directory (mounted as is into the locust image), not a package: its modules
import each other by bare name, and so do these tests."""

from __future__ import annotations

import sys
from pathlib import Path

LOADTEST = Path(__file__).resolve().parents[2] / "loadtest"
if str(LOADTEST) not in sys.path:
    sys.path.insert(0, str(LOADTEST))
