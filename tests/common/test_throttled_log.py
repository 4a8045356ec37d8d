"""Warnings about a failing dependency: the first at once, then one per key per interval."""

from __future__ import annotations

import logging
import time

import pytest

from services.common.throttled_log import ThrottledWarnings


def test_one_line_per_key_per_interval_with_the_suppressed_count(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = [100.0]
    monkeypatch.setattr(time, "monotonic", lambda: now[0])
    warnings = ThrottledWarnings(logging.getLogger("test.throttled"), every_s=10)
    with caplog.at_level(logging.WARNING, logger="test.throttled"):
        assert warnings.warn("shard-a", "down")
        for _ in range(5):
            assert not warnings.warn("shard-a", "down")
        # Another key is not held back by the first.
        assert warnings.warn("shard-b", "down")
        now[0] += 10.5
        assert warnings.warn("shard-a", "down")
    lines = [(r.key, r.suppressed) for r in caplog.records]  # type: ignore[attr-defined]
    assert lines == [("shard-a", 0), ("shard-b", 0), ("shard-a", 5)]
