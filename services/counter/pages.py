"""What a page id may be, and where its count lives."""

from __future__ import annotations

PAGE_ID_PATTERN = r"^[A-Za-z0-9._~-]{1,128}$"
KEY_PREFIX = "visits:"


def visits_key(page_id: str) -> str:
    return KEY_PREFIX + page_id


def page_of(key: str) -> str:
    return key.removeprefix(KEY_PREFIX)
