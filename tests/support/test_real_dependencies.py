"""The guard that keeps `-m "not cluster"` pure: what counts as starting a server, and that a
test not marked `cluster` is stopped when it tries."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.support.real_dependencies import no_servers, server_started


@pytest.mark.parametrize(
    ("args", "program"),
    [
        (["/usr/bin/redis-server", "--port", "1"], "redis-server"),
        ("nginx -p /tmp -c nginx.conf", "nginx"),
        ([sys.executable, "-m", "cluster", "up"], "python -m cluster"),
        (["docker", "run", "quartet:local"], "docker"),
        ([sys.executable, "-m", "pytest"], None),
        (["promtool", "test", "rules"], None),
        ([], None),
    ],
)
def test_what_starts_a_server(args: list[str] | str, program: str | None) -> None:
    assert server_started(args) == program


def test_an_unmarked_test_cannot_start_a_server_but_can_run_a_tool() -> None:
    before = subprocess.Popen  # already guarded: this very test is not marked `cluster`
    with no_servers("this-test"):
        with pytest.raises(AssertionError, match="this-test starts redis-server but is not"):
            subprocess.run(["redis-server", "--version"], check=False)
        assert subprocess.run(["true"], check=False).returncode == 0
    assert subprocess.Popen is before  # put back on the way out
