"""The live view in a real terminal: tmux runs it detached, capture-pane reads the screen. A frame
shows every service with Prometheus's numbers, it refreshes in place, `q` and Ctrl-C quit with
0; with Prometheus down it says so and keeps trying."""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from services.common.description import names
from tests.monitor import expected, frame_text
from tests.support.cluster import RunningCluster
from tests.support.polling import wait_until_blocking

# A tmux server is a server: the pure selection does not start one.
pytestmark = pytest.mark.cluster

ROOT = Path(__file__).resolve().parents[2]
FRAME_S = 30  # the first frame: a Python start and one round of queries, on a loaded machine


class Pane:
    """One detached tmux session on a private socket in the test's directory (its own server,
    this test's environment), running the monitor and writing its exit code to a file when it
    ends."""

    def __init__(self, socket: Path, rc_file: Path) -> None:
        self.socket, self.rc_file = str(socket), rc_file
        self.tmux = shutil.which("tmux")
        assert self.tmux, "tmux is missing: `make install` (scripts/bootstrap.sh) installs it"

    def run(self, *args: str) -> str:
        assert self.tmux is not None
        result = subprocess.run(
            [self.tmux, "-S", self.socket, *args],
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        )
        return result.stdout

    def start(self, *monitor_args: str) -> None:
        # COLUMNS and LINES, when the shell exports them, would pin rich to their size, not the
        # pane's (the shell that runs the command can set them before -x/-y resize the pane).
        monitor = ["env", "-u", "COLUMNS", "-u", "LINES", sys.executable, "-m", "cluster.monitor"]
        command = shlex.join([*monitor, *monitor_args])
        rc = shlex.quote(str(self.rc_file))
        self.run(
            "-f", "/dev/null",  # no user configuration
            "new-session", "-d", "-s", "monitor", "-x", "200", "-y", "60", "-c", str(ROOT),
            f"{command}; echo $? > {rc}",
        )  # fmt: skip

    def screen(self) -> str:
        return self.run("capture-pane", "-p", "-t", "monitor")

    def wait_for(self, ok: Callable[[str], bool], timeout_s: float, what: str) -> str:
        """The first screen `ok` accepts, polled until the deadline."""
        seen: list[str] = []

        def check() -> bool:
            seen.append(self.screen())
            return ok(seen[-1])

        try:
            wait_until_blocking(check, timeout_s, what, interval_s=0.25)
        except AssertionError as exc:
            raise AssertionError(f"{exc}; the last screen:\n{seen[-1] if seen else ''}") from None
        return seen[-1]

    def exit_code(self, timeout_s: float = 10) -> int:
        wait_until_blocking(self.rc_file.exists, timeout_s, "the monitor to exit")
        wait_until_blocking(lambda: self.rc_file.read_text().strip(), 2, "its exit code")
        return int(self.rc_file.read_text())


@pytest.fixture
def pane(tmp_path: Path) -> Iterator[Pane]:
    pane = Pane(tmp_path / "tmux.sock", tmp_path / "rc")
    try:
        yield pane
    finally:
        # Only this test's server (its own socket): the session and anything still in it.
        subprocess.run(
            [pane.tmux or "tmux", "-S", pane.socket, "kill-server"],
            capture_output=True,
            check=False,
            timeout=10,
        )


def _every_service(screen: str) -> bool:
    try:
        rows = frame_text.table(screen, "services")
    except AssertionError:
        return False  # not drawn yet
    return [row["service"] for row in rows] == list(names())


def _instant(screen: str) -> float:
    try:
        return frame_text.instant(screen)
    except AssertionError:
        return 0.0


def test_the_live_view_shows_prometheus_numbers_refreshes_and_quits_on_q(
    watched_cluster: RunningCluster, pane: Pane
) -> None:
    pane.start("--prometheus", expected.prometheus_url(watched_cluster))
    first = pane.wait_for(_every_service, FRAME_S, "a frame with every service")
    assert "every 2 s · q quits" in first

    # A frame's numbers are Prometheus's at its instant. A scrape that lands between the
    # monitor's query and this test's can change a raw rate, so a frame whose numbers all agree
    # is awaited (each refresh is a new chance), not required of the first one.
    problems: list[str] = []

    def agrees(screen: str) -> bool:
        problems[:] = (
            expected.mismatches(screen, watched_cluster) if _every_service(screen) else ["?"]
        )
        return not problems

    try:
        pane.wait_for(agrees, 20, "a frame that agrees with Prometheus")
    except AssertionError as exc:
        raise AssertionError(f"{problems}\n{exc}") from None

    # In place: the same screen, a later instant (every 2 s).
    start = _instant(pane.screen())
    later = pane.wait_for(lambda s: _instant(s) > start, 10, "a refresh")
    assert _every_service(later)
    assert later.count("Quartet monitor") == 1  # redrawn, not appended

    pane.run("send-keys", "-t", "monitor", "q")
    assert pane.exit_code() == 0


def test_the_live_view_without_prometheus_says_so_keeps_trying_and_quits_on_ctrl_c(
    pane: Pane, no_prometheus: str
) -> None:
    url = no_prometheus
    pane.start("--prometheus", url, "--interval", "1")
    message = f"Prometheus at {url} is not answering"
    first = pane.wait_for(lambda s: message in s, FRAME_S, "the not-answering message")
    assert "Traceback" not in first
    start = _instant(first)
    retried = pane.wait_for(lambda s: _instant(s) > start, 10, "another attempt")
    assert message in retried
    assert "no answer yet" in retried
    pane.run("send-keys", "-t", "monitor", "C-c")
    assert pane.exit_code() == 0
    assert abs(start - time.time()) < 60  # the header shows the attempt's own instant
