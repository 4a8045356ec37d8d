"""bench/wrk.lua and bench/giftcode_claims.lua, with the reporting they share
(bench/wrk_report.lua), driven by the real wrk against a tiny local server."""

from __future__ import annotations

import shutil
import subprocess
import threading
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest
from wrk_output import WrkResult, bench_json, parse_wrk

# They start wrk or nginx: not among the pure tests (tests/support/real_dependencies.py).
pytestmark = pytest.mark.cluster

BENCH = Path(__file__).resolve().parents[2] / "bench"
LUA = BENCH / "wrk.lua"
CLAIM_LUA = BENCH / "giftcode_claims.lua"


class _Recorder(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    seen: ClassVar[Counter[tuple[str, str]]] = Counter()
    cookies: ClassVar[Counter[str]] = Counter()
    lock = threading.Lock()

    def _answer(self) -> None:
        with self.lock:
            self.seen[(self.command, self.path)] += 1
            if self.headers["Cookie"]:
                self.cookies[self.headers["Cookie"]] += 1
        body = b'{"errors":{}}' if self.path.startswith("/good") else b'{"errors":{"x":1}}'
        status = 500 if self.path.startswith("/fail") else 200
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = _answer
    do_POST = _answer

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    _Recorder.seen = Counter()
    _Recorder.cookies = Counter()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def wrk(url: str, *options: str) -> WrkResult:
    done = subprocess.run(
        ["wrk", "-t2", "-c4", "-d1s", "-s", str(LUA), url, "--", *options],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return parse_wrk(done.stdout)


needs_wrk = pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is not installed")


@needs_wrk
def test_wrk_lua_counts_bodies_without_the_expected_text(server: str) -> None:
    good = wrk(f"{server}/good", 'expect="errors":{}')
    assert good.requests > 0
    assert good.bad_bodies == 0
    bad = wrk(f"{server}/bad", 'expect="errors":{}')
    assert bad.bad_bodies == bad.requests > 0


@needs_wrk
def test_wrk_lua_posts_and_counts_error_statuses(server: str) -> None:
    posted = wrk(f"{server}/fail", "method=POST")
    assert posted.non_2xx == posted.requests > 0
    assert {method for method, _ in _Recorder.seen} == {"POST"}


@needs_wrk
def test_wrk_lua_cold_ids_are_never_repeated(server: str) -> None:
    cold = wrk(server, "cold=1763900000000000", "threads=2")
    paths = [path for _, path in _Recorder.seen.elements()]
    assert len(paths) >= cold.requests > 0
    assert all(path.startswith("/recommend/17639") for path in paths)
    assert len(set(paths)) == len(paths)


@needs_wrk
def test_wrk_lua_delay_paces_the_load(server: str) -> None:
    # 4 connections, each waiting 100 ms on average: about 40 requests in the second.
    paced = wrk(f"{server}/good", "delay=100")
    assert 20 <= paced.requests <= 60


@needs_wrk
def test_wrk_lua_loads_its_reporting_from_beside_itself(server: str) -> None:
    # A relative script path from another directory: wrk_report.lua is found next to wrk.lua.
    done = subprocess.run(
        ["wrk", "-t1", "-c1", "-d1s", "-s", str(LUA.relative_to(BENCH.parent)), f"{server}/good"],
        cwd=BENCH.parent,
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    assert parse_wrk(done.stdout).requests > 0
    bare = subprocess.run(
        ["wrk", "-t1", "-c1", "-d1s", "-s", LUA.name, f"{server}/good"],
        cwd=BENCH,
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    assert parse_wrk(bare.stdout).requests > 0


@needs_wrk
def test_giftcode_claims_lua_posts_each_cookie_once_then_counts_reuse(
    server: str, tmp_path: Path
) -> None:
    prefix = tmp_path / "cookies"
    per_thread = 5
    for tid in range(2):
        lines = [f"quartet_visitor=t{tid}-v{n}" for n in range(per_thread)]
        (tmp_path / f"cookies-{tid}.txt").write_text("\n".join(lines) + "\n")
    done = subprocess.run(
        ["wrk", "-t2", "-c2", "-d1s", "-s", str(CLAIM_LUA), f"{server}/claim", "--",
         f"cookies={prefix}"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )  # fmt: skip
    claimed = parse_wrk(done.stdout)
    reused = int(bench_json(done.stdout)["reused"])
    assert claimed.requests > 2 * per_thread
    assert {method for method, _ in _Recorder.seen} == {"POST"}
    # Every cookie was sent, in turn (no cookie twice before the others once).
    sent = {f"quartet_visitor=t{t}-v{n}" for t in range(2) for n in range(per_thread)}
    assert set(_Recorder.cookies) == sent
    for tid in range(2):
        counts = [_Recorder.cookies[f"quartet_visitor=t{tid}-v{n}"] for n in range(per_thread)]
        assert max(counts) - min(counts) <= 1, counts
    # The claims beyond the first 2 x 5 reused one; `reused` also counts the requests still in
    # flight when wrk stopped (at most one per connection), which the server never answered.
    answered_again = sum(_Recorder.cookies.values()) - 2 * per_thread
    assert 0 < answered_again <= reused <= answered_again + 2


@needs_wrk
def test_giftcode_claims_lua_refuses_to_run_without_cookies(server: str) -> None:
    done = subprocess.run(
        ["wrk", "-t1", "-c1", "-d1s", "-s", str(CLAIM_LUA), f"{server}/claim"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert "cookies=<prefix> is required" in done.stdout + done.stderr
