"""bench/ holds scripts, not a package: the tests import its modules by bare name."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.support.cluster import RunningCluster

BENCH = Path(__file__).resolve().parents[2] / "bench"
if str(BENCH) not in sys.path:
    sys.path.insert(0, str(BENCH))


def run_script(name: str, cluster: RunningCluster, *args: str) -> str:
    """bench/<name> against the test cluster, as a user runs it; its output, which the assertion
    shows when it exited non-zero."""
    done = subprocess.run(
        [sys.executable, str(BENCH / name), "--url", cluster.internal, *args],
        env=cluster.env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-4000:]
    return output
