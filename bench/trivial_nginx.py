"""A throwaway nginx that answers every request with the same small JSON: the server for
bench/http_clients.py, whose CPU (a separate process) is not counted against the clients."""

from __future__ import annotations

import contextlib
import http.client
import os
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

BODY = '{"time":123}'

NGINX_CONF = """\
worker_processes 1;
daemon off;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{
    worker_connections 4096;
}}
http {{
    access_log off;
    client_body_temp_path {prefix}/client_body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    keepalive_requests 100000;
    keepalive_timeout 75s;
    server {{
        listen 127.0.0.1:{port};
        location / {{
            default_type application/json;
            return 200 '{body}';
        }}
    }}
}}
"""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def answers(url: str) -> bool:
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=1.0)
    try:
        conn.request("GET", parts.path or "/")
        return conn.getresponse().status == 200
    except OSError:
        return False
    finally:
        conn.close()


def wait_until_answers(url: str, proc: subprocess.Popen[bytes] | None, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"nginx exited with status {proc.returncode}")
        if answers(url):
            return
        time.sleep(0.05)
    raise RuntimeError(f"{url} did not answer 200 within {timeout_s:.0f}s")


@contextlib.contextmanager
def local_nginx(binary: str) -> Iterator[str]:
    """Start nginx on a free loopback port in a temporary prefix; yield its URL."""
    with tempfile.TemporaryDirectory(prefix="bench-http-clients-") as prefix:
        port = free_port()
        conf = Path(prefix) / "nginx.conf"
        conf.write_text(NGINX_CONF.format(prefix=prefix, port=port, body=BODY))
        cmd = [binary, "-p", prefix, "-e", f"{prefix}/error.log", "-c", str(conf)]
        if os.geteuid() == 0:
            cmd += ["-g", "user root;"]  # else the worker runs as nobody and cannot read prefix
        url = f"http://127.0.0.1:{port}/"
        # Its errors go to error.log (-e), read when it does not answer.
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            try:
                wait_until_answers(url, proc, timeout_s=10.0)
            except RuntimeError as exc:
                log = Path(prefix) / "error.log"
                detail = log.read_text() if log.exists() else ""
                raise RuntimeError(f"{exc}\n{detail}") from exc
            yield url
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGQUIT)  # graceful shutdown
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


def nginx_version(binary: str) -> str:
    out = subprocess.run([binary, "-v"], capture_output=True, text=True, check=False)
    return (out.stderr or out.stdout).strip()
