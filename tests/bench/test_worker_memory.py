"""Which processes are a service's workers, and their resident memory."""

from __future__ import annotations

import os

import worker_memory
from worker_memory import Process

GUNICORN = ("/venv/bin/python", "/venv/bin/gunicorn", "-c", "python:services.common.gunicorn_conf")


def _gunicorn(pid: int, ppid: int, service: str, rss_kb: int, port: int = 8110) -> Process:
    argv = (*GUNICORN, "--bind", f"127.0.0.1:{port}", f"services.{service}.app:app")
    return Process(pid, ppid, argv, rss_kb)


def test_only_workers_count_not_their_masters_nor_other_programs() -> None:
    found = [
        _gunicorn(10, 1, "counter", 40_000),  # master
        _gunicorn(11, 10, "counter", 70_000),
        _gunicorn(12, 10, "counter", 72_000),
        _gunicorn(20, 1, "banner", 40_000),
        _gunicorn(21, 20, "banner", 90_000),
        Process(30, 1, ("/usr/bin/redis-server", "127.0.0.1:7070"), 500_000),
        Process(31, 30, ("/usr/bin/redis-server", "127.0.0.1:7070"), 500_000),
    ]
    assert worker_memory.rss_by_service(found) == {
        "banner": [87.9],
        "counter": [70.3, 68.4],
    }


def test_only_the_measured_clusters_instances_count() -> None:
    found = [
        _gunicorn(10, 1, "counter", 40_000, port=8110),
        _gunicorn(11, 10, "counter", 70_000, port=8110),
        _gunicorn(20, 1, "counter", 40_000, port=18110),  # another cluster, another offset
        _gunicorn(21, 20, "counter", 99_000, port=18110),
    ]
    assert worker_memory.rss_by_service(found, {8110, 8111}) == {"counter": [68.4]}
    assert worker_memory.bound_port(("gunicorn", "--bind", "0.0.0.0:x")) is None


def test_this_machine_is_read_without_error() -> None:
    found = {p.pid: p for p in worker_memory.processes()}
    assert found[os.getpid()].rss_kb > 0
    report = worker_memory.report({"counter": [70.0, 120.0]})
    assert report["within_bound"] is False
