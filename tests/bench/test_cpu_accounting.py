"""Where the machine's CPU goes (bench/cpu_accounting.py): processes grouped by their part of the
stack, against the one description of the cluster."""

from __future__ import annotations

import os
import time

import cpu_accounting
import pytest

from services.common.description import RUNNABLE, Service


@pytest.mark.parametrize(
    ("cmdline", "group"),
    [
        ("/w/.venv/bin/python /w/.venv/bin/gunicorn -c python:services.common.gunicorn_conf "
         "--bind 127.0.0.1:8130 services.recommender.app:app", "recommender"),
        ("/w/.venv/bin/python /w/.venv/bin/gunicorn -c python:services.common.gunicorn_conf "
         "--bind 127.0.0.1:8110 services.counter.app:app", "counter"),
        ("/w/.venv/bin/python /w/.venv/bin/uvicorn services.worksim.app:app --port 8190",
         "worksim"),
        ("nginx: worker process", "nginx"),
        ("/usr/sbin/nginx -p /w/.run/nginx/ -c /w/.run/nginx/nginx.conf", "nginx"),
        ("/usr/bin/redis-server 127.0.0.1:7070", "redis"),
        ("/usr/sbin/mariadbd --no-defaults --port=3307", "mariadb"),
        ("/w/.venv/bin/python /w/.venv/bin/supervisord -c /w/.run/supervisord.conf",
         "supervisord"),
        ("/usr/bin/prometheus-redis-exporter --redis.addr x", "monitoring"),
        ("mtail -progs /w/prometheus/mtail", "monitoring"),
        ("wrk -t2 -c64 -d10s http://x", "wrk"),
        ("bash", "other"),
        ("", "other"),
    ],
)  # fmt: skip
def test_processes_are_grouped_by_their_part_of_the_stack(cmdline: str, group: str) -> None:
    assert cpu_accounting.process_group(cmdline.split(" ")) == group


@pytest.mark.parametrize("spec", RUNNABLE, ids=lambda spec: spec.name)
def test_every_described_service_under_gunicorn_is_its_own_group(spec: Service) -> None:
    argv = ["/w/.venv/bin/python", "/w/.venv/bin/gunicorn", "--bind", "127.0.0.1:1", spec.app]
    assert cpu_accounting.process_group(argv) == spec.name


def test_cpu_cores_over_a_window() -> None:
    before = {"nginx": 10.0, "counter": 20.0, "redis": 5.0}
    after = {"nginx": 12.0, "counter": 32.0, "redis": 5.0, "wrk": 1.0}
    cores = cpu_accounting.cpu_cores(before, after, 10.0)
    assert cores == {"nginx": 0.2, "counter": 1.2, "wrk": 0.1}
    assert cpu_accounting.cpu_cores(before, after, 0) == {}


def test_a_process_cpu_is_read_from_proc() -> None:
    before = cpu_accounting.process_ticks(os.getpid())
    deadline = time.monotonic() + 10
    # Busy until the kernel has charged this process at least one more tick.
    while cpu_accounting.process_ticks(os.getpid()) == before and time.monotonic() < deadline:
        sum(i * i for i in range(10_000))
    assert cpu_accounting.process_ticks(os.getpid()) > before
    totals = cpu_accounting.cpu_seconds()
    assert totals["other"] > 0  # this pytest process, at least
    assert "wrk" in totals  # our exited children's, zero or more
