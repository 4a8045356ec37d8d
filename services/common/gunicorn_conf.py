"""gunicorn settings shared by every service: `gunicorn -c python:services.common.gunicorn_conf`.

The local cluster names the app and the address on the command line. The container image runs
the bare command: QUARTET_SERVICE picks the app and PORT the port, so one image serves every
service.

Workers are uvicorn's (uvloop + httptools). Prometheus runs in multiprocess mode when
PROMETHEUS_MULTIPROC_DIR is set: the directory is emptied when the master starts and a dead
worker's files are marked so its live gauges disappear.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from prometheus_client import multiprocess

from services.common.description import RUNNABLE

SERVICES = tuple(spec.name for spec in RUNNABLE)

_service = os.environ.get("QUARTET_SERVICE")
if _service:
    if _service not in SERVICES:
        raise SystemExit(f"QUARTET_SERVICE={_service!r}: expected one of {', '.join(SERVICES)}")
    wsgi_app = f"services.{_service}.app:app"
    bind = [f"0.0.0.0:{int(os.environ.get('PORT', '8000'))}"]

worker_class = "services.common.http_protocol.ProblemUvicornWorker"
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
# Longer than nginx's upstream keepalive_timeout (60 s): the gateway closes idle connections
# first, so it never sends a request on a connection the worker is closing.
keepalive = 75
# SIGTERM: workers stop accepting, finish what they have, run the shutdown hooks (the counter
# flushes its buffer), and only then are killed.
graceful_timeout = int(os.environ.get("GRACEFUL_TIMEOUT", "30"))
timeout = 60
backlog = 2048
# gunicorn 23+'s control socket (for `gunicornc`) is unused here. Its default path under $HOME is
# read-only in the image (HOME=/nonexistent) and shared by every instance of the local cluster.
control_socket_disable = True
accesslog = None
logconfig_dict: dict[str, Any] = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "json": {
            "()": "pythonjsonlogger.orjson.OrjsonFormatter",
            "fmt": "%(levelname)s %(name)s %(message)s",
            "rename_fields": {"levelname": "level", "name": "logger"},
            "timestamp": "time",
        }
    },
    "handlers": {
        "stdout": {
            "class": "logging.StreamHandler",
            "formatter": "json",
            "stream": "ext://sys.stdout",
        }
    },
    "root": {"handlers": ["stdout"], "level": "INFO"},
    "loggers": {
        "gunicorn.error": {"handlers": ["stdout"], "level": "INFO", "propagate": False},
        "gunicorn.access": {"handlers": ["stdout"], "level": "WARNING", "propagate": False},
    },
}


def on_starting(server: Any) -> None:
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if directory:
        # Files of a previous run would be summed into this run's counters.
        shutil.rmtree(directory, ignore_errors=True)
        Path(directory).mkdir(parents=True, exist_ok=True)


def child_exit(server: Any, worker: Any) -> None:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.mark_process_dead(worker.pid)  # type: ignore[no-untyped-call]
