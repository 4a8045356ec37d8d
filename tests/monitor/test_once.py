"""`--once` against the test cluster after traffic: exit 0, every service, every number what
Prometheus answers at the frame's instant; and one clear line, not a traceback, when Prometheus
does not answer."""

from __future__ import annotations

import subprocess
import sys
import time

from services.common.description import names
from tests.monitor import expected, frame_text
from tests.support.cluster import RunningCluster


def _monitor(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cluster.monitor", *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
        env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"},
    )


def test_once_prints_a_frame_that_matches_prometheus(watched_cluster: RunningCluster) -> None:
    # A few seconds back, so every scrape and rule evaluation up to it has landed: the frame and
    # this test's own queries then read the same samples.
    at = expected.settled_instant()
    url = expected.prometheus_url(watched_cluster)
    result = _monitor("--once", "--prometheus", url, "--at", f"{at:.0f}")
    assert (result.returncode, result.stderr) == (0, ""), result.stderr
    text = result.stdout
    assert frame_text.instant(text) == at
    services = frame_text.table(text, "services")
    assert [row["service"] for row in services] == list(names())
    assert all(frame_text.span(row["req/s"]) for row in services), text  # traffic: numbers
    assert expected.mismatches(text, watched_cluster) == [], text
    gifts = {row["campaign"]: row["codes"] for row in frame_text.table(text, "gift codes left")}
    assert gifts.get(expected.GIFT_CAMPAIGN, str(expected.GIFT_CODES)) == str(expected.GIFT_CODES)


def test_once_without_prometheus_says_so_in_one_line(no_prometheus: str) -> None:
    url = no_prometheus
    result = _monitor("--once", "--prometheus", url)
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"Prometheus at {url} is not answering: "), lines[0]
    assert "Traceback" not in result.stderr


def test_the_live_view_into_a_pipe_prints_frame_after_frame(no_prometheus: str) -> None:
    # No terminal: each attempt is printed after the last (a log), not drawn in place.
    monitor = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "cluster.monitor",
            "--prometheus",
            no_prometheus,
            "--interval",
            "0.2",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"},
    )
    assert monitor.stdout is not None
    message = f"Prometheus at {no_prometheus} is not answering"
    seen: list[str] = []
    deadline = time.monotonic() + 20
    try:
        while sum(message in line for line in seen) < 3 and time.monotonic() < deadline:
            line = monitor.stdout.readline()
            if not line:
                break
            seen.append(line)
    finally:
        monitor.terminate()
        _, errors = monitor.communicate(timeout=10)
    assert sum(message in line for line in seen) >= 3, "".join(seen) + errors
    instants = [frame_text.instant(line) for line in seen if "Quartet monitor" in line]
    assert instants == sorted(instants)
    assert "Traceback" not in "".join(seen)
