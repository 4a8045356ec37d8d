"""What a test's client takes for admission control's refusal, and what it does not."""

from __future__ import annotations

import orjson
import pytest

from cluster.gateway_files import ROOT
from services.common.admission_middleware import REFUSAL_DETAIL
from tests.support.refusals import is_refusal

GATEWAYS = (ROOT / "nginx" / "_errors" / "503.json").read_bytes()
WORKERS = orjson.dumps({"status": 503, "detail": REFUSAL_DETAIL})
RETRY = {"retry-after": "1"}


@pytest.mark.parametrize(
    ("status", "headers", "body", "refused"),
    [
        (503, RETRY, WORKERS, True),
        (503, RETRY, GATEWAYS, True),
        (503, {}, WORKERS, False),  # no Retry-After: not a refusal to come back
        (503, RETRY, orjson.dumps({"detail": "the ledger backlog is full"}), False),
        (503, RETRY, b"<html>", False),
        (503, RETRY, b"[]", False),
        (429, RETRY, WORKERS, False),
        (200, RETRY, WORKERS, False),
    ],
)
def test_only_admissions_own_503_is_a_refusal(
    status: int, headers: dict[str, str], body: bytes, refused: bool
) -> None:
    assert is_refusal(status, headers, body) is refused
