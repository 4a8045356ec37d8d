"""The banner dataset's files: what the ingest reads and the generator writes, stated once.

DataChef's layout: DIR/<quarter>/<kind>_<quarter>.csv for quarters 1..4, each file with a header.
"""

from __future__ import annotations

HEADERS: dict[str, tuple[str, ...]] = {
    "impressions": ("banner_id", "campaign_id"),
    "clicks": ("click_id", "banner_id", "campaign_id"),
    "conversions": ("conversion_id", "click_id", "revenue"),
}


def csv_name(kind: str, quarter: int) -> str:
    """The file's name inside its quarter's directory."""
    return f"{kind}_{quarter}.csv"
