"""Warnings about a failing dependency, at most one per key per interval.

A store that is down fails every request; a log line per request would bury the one line that
matters and cost more than the request. The first failure is logged at once, later ones are
counted and reported with the next line.
"""

from __future__ import annotations

import logging
import time

WARN_EVERY_S = 10.0


class ThrottledWarnings:
    def __init__(self, log: logging.Logger, every_s: float = WARN_EVERY_S) -> None:
        self.log = log
        self.every_s = every_s
        # One entry per key the code names (a shard, a job), never per request: bounded.
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}

    def warn(self, key: str, message: str, **extra: object) -> bool:
        """Log `message` unless `key` was logged within the interval; True when it was logged."""
        now = time.monotonic()
        last = self._last.get(key)
        if last is not None and now - last < self.every_s:
            self._suppressed[key] = self._suppressed.get(key, 0) + 1
            return False
        self._last[key] = now
        suppressed = self._suppressed.pop(key, 0)
        self.log.warning(message, extra={**extra, "key": key, "suppressed": suppressed})
        return True
