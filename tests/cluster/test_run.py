"""`make run` as a person uses it: the cluster in the foreground, Ctrl-C stops it all gracefully
(buffered visits reach Redis), and the next start finds the data again."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from cluster.topology import ClusterSettings, Topology
from tests.support.cluster import cluster_env, free_offset, listening

pytestmark = pytest.mark.cluster  # a cluster of its own, in the foreground

OFFSET = free_offset()
GATEWAY = f"http://127.0.0.1:{8080 + OFFSET}"


def _env(state: Path) -> dict[str, str]:
    # Flush interval longer than the test: the visits can only reach Redis by the shutdown flush.
    return cluster_env(state, OFFSET, QUARTET_INSTANCES="1", COUNTER_FLUSH_INTERVAL_S="600")


def _wait_for(log: Path, text: str, proc: subprocess.Popen[bytes], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if text in log.read_text(errors="replace"):
            return
        assert proc.poll() is None, log.read_text(errors="replace")[-3000:]
        time.sleep(0.2)
    raise AssertionError(f"{text!r} not seen in {timeout_s}s: {log.read_text()[-3000:]}")


def test_ctrl_c_stops_everything_after_flushing(tmp_path: Path) -> None:
    state, log = tmp_path / "state", tmp_path / "run.log"
    env = _env(state)
    with log.open("wb") as out:
        # Its own process group, like a shell job: SIGINT to the group is the terminal's Ctrl-C.
        proc = subprocess.Popen(
            [sys.executable, "-m", "cluster", "run"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        _wait_for(log, "Ctrl-C stops the cluster", proc, timeout_s=120)
        for _ in range(7):
            assert httpx.post(f"{GATEWAY}/visits/ctrl-c").status_code == 200
        os.killpg(proc.pid, signal.SIGINT)
        assert proc.wait(90) == 0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    output = log.read_text(errors="replace")
    assert "counter flushed at shutdown" in output
    topo = Topology(ClusterSettings(STATE_DIR=state, PORT_OFFSET=OFFSET, INSTANCES=1))
    assert not [p for p in topo.listen_ports(private_mysql=True) if listening(p)]

    # The next start reuses the state: the seven visits are there.
    subprocess.run(
        [sys.executable, "-m", "cluster", "up"],
        env=env,
        check=True,
        capture_output=True,
        timeout=180,
    )
    try:
        assert httpx.get(f"{GATEWAY}/visits/ctrl-c").json()["visits"] == 7
    finally:
        subprocess.run(
            [sys.executable, "-m", "cluster", "clean"],
            env=env,
            check=True,
            capture_output=True,
            timeout=120,
        )
    assert not state.exists()
