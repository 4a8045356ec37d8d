"""Where a page's count lives (what a page id may be: services/common/page_id.py)."""

from __future__ import annotations

KEY_PREFIX = "visits:"


def visits_key(page_id: str) -> str:
    return KEY_PREFIX + page_id


def page_of(key: str) -> str:
    return key.removeprefix(KEY_PREFIX)
