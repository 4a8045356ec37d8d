"""The nginx bench/http_clients.py measures against (bench/trivial_nginx.py): it answers, then
is gone."""

from __future__ import annotations

import shutil
import urllib.request
from pathlib import Path

import pytest
import trivial_nginx

# They start wrk or nginx: not among the pure tests (tests/support/real_dependencies.py).
pytestmark = pytest.mark.cluster

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"


def _get(url: str) -> tuple[int, str]:
    with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310
        return int(response.status), response.read().decode()


@pytest.mark.skipif(not Path(NGINX).exists(), reason="nginx is not installed")
def test_it_answers_the_fixed_body_and_stops() -> None:
    with trivial_nginx.local_nginx(NGINX) as url:
        status, body = _get(url)
        assert status == 200
        assert body == trivial_nginx.BODY
    assert not trivial_nginx.answers(url)
