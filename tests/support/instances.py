"""A service instance of a test's own: the same gunicorn command as the local cluster, one
worker, on a free port, with the cluster's MySQL and admin token and whatever settings the test
gives it; its output in a log file beside the test."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.support.cluster import RunningCluster
from tests.support.processes import free_port


@dataclass
class Instance:
    url: str
    proc: subprocess.Popen[bytes]
    log: Path

    def stop(self) -> None:
        """SIGTERM (the graceful stop: workers drain and run their shutdown hooks)."""
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(40)


def start_instance(
    cluster: RunningCluster, directory: Path, service: str, redis_shards: str, **env: str
) -> Instance:
    """Start `services.<service>.app` and return once it answers (its lifespan has started)."""
    port = free_port()
    metrics_dir = directory / f"metrics-{port}"
    metrics_dir.mkdir()
    full_env = {
        **os.environ,
        "REDIS_SHARDS": redis_shards,
        "MYSQL_DSN": cluster.mysql_dsn,
        "ADMIN_TOKEN": cluster.admin_token,
        "ENVIRONMENT": "test",
        "WEB_CONCURRENCY": "1",
        "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
        **env,
    }
    gunicorn = str(Path(sys.executable).parent / "gunicorn")
    log = directory / f"{service}-{port}.log"
    # The child keeps its own copy of the descriptor.
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                gunicorn,
                "-c",
                "python:services.common.gunicorn_conf",
                "--bind",
                f"127.0.0.1:{port}",
                f"services.{service}.app:app",
            ],
            env=full_env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    instance = Instance(f"http://127.0.0.1:{port}", proc, log)
    deadline = time.monotonic() + 30
    while True:
        with contextlib.suppress(httpx.TransportError):
            if httpx.get(f"{instance.url}/readyz").status_code == 200:
                return instance
        if proc.poll() is not None or time.monotonic() > deadline:
            instance.stop()
            raise AssertionError(f"{service} did not start: see {log}")
        time.sleep(0.1)
