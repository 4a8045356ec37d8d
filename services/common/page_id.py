"""What a page id is, for every service that takes one in its path.

The counter stores visits under it and the aggregator forwards it into the counter's path, so both
refuse the same ids with the same 422: characters safe in a URL path segment and in a Redis key,
and a bound on their length (the counter's keys, the aggregator's URLs).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Path

PAGE_ID_MAX_LENGTH = 128
PAGE_ID_PATTERN = rf"^[A-Za-z0-9._~-]{{1,{PAGE_ID_MAX_LENGTH}}}$"

PageId = Annotated[
    str,
    Path(
        pattern=PAGE_ID_PATTERN,
        min_length=1,
        max_length=PAGE_ID_MAX_LENGTH,
        description=f"1..{PAGE_ID_MAX_LENGTH} characters of [A-Za-z0-9._~-]",
    ),
]
