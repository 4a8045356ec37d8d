"""The smoke profile against the test cluster: a few seconds of every kind of traffic through the
public listener, locust headless as a subprocess, and no unexpected failure."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import outcomes

from tests.support.cluster import RunningCluster

LOADTEST = Path(__file__).resolve().parents[2] / "loadtest"
KINDS = {"visitor", "reader", "api-client", "admin"}


def run_locust(
    cluster: RunningCluster, host: str, out: Path, *args: str, **env: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "locust",
            "-f",
            str(LOADTEST / "locustfile.py"),
            "--config",
            str(LOADTEST / "profiles" / "smoke.conf"),
            "--host",
            host,
            "--csv",
            str(out / "smoke"),
            "--html",
            str(out / "smoke.html"),
            *args,
        ],
        env={**os.environ, "ADMIN_TOKEN": cluster.admin_token, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_smoke_profile_sends_every_kind_of_traffic_without_unexpected_failures(
    cluster: RunningCluster, tmp_path: Path
) -> None:
    # Through the public listener; the admin routes only exist on the internal one.
    result = run_locust(cluster, cluster.gateway, tmp_path, LOCUST_ADMIN_HOST=cluster.internal)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    stats = outcomes.read_stats_csv(tmp_path / "smoke_stats.csv")
    failures = outcomes.read_failures_csv(tmp_path / "smoke_failures.csv")
    total = next(row.requests for row in stats if row.name == "Aggregated")
    summary = outcomes.summarize(total, failures)
    assert summary.unexpected == 0, summary.unexpected_by_message
    by_kind = outcomes.requests_by_kind(stats)
    assert set(by_kind) == KINDS, by_kind
    assert all(count > 0 for count in by_kind.values()), by_kind
    verdict = json.loads((tmp_path / "smoke_summary.json").read_text())
    assert verdict["passed"] is True
    assert verdict["unexpected"] == 0
    assert (tmp_path / "smoke.html").stat().st_size > 0
    # The verdict is printed last, after locust's own tables (verdict.print_last at quit).
    printed = result.stdout.rstrip().splitlines()
    assert "Quartet load test verdict" in printed
    assert printed[-1].startswith("  PASSED: "), printed[-12:]


def test_unexpected_failures_fail_the_run(cluster: RunningCluster, tmp_path: Path) -> None:
    # Campaigns the cluster does not have: every banner request is a 404.
    result = run_locust(
        cluster, cluster.internal, tmp_path, "--run-time", "3s", LOADTEST_CAMPAIGNS="999999"
    )
    assert result.returncode == 1, (result.stdout + result.stderr)[-4000:]
    verdict = json.loads((tmp_path / "smoke_summary.json").read_text())
    assert result.stdout.rstrip().splitlines()[-1].startswith("  FAILED: ")
    assert verdict["passed"] is False
    assert any("HTTP 404" in message for message in verdict["unexpected_by_message"])
