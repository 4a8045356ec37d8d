"""What MySQL records of a campaign's gift codes, and who a visitor cookie names."""

from __future__ import annotations

from services.common.mysql import connect_blocking
from tests.support.cluster import RunningCluster


def query(cluster: RunningCluster, sql: str, *args: object) -> list[tuple[object, ...]]:
    conn = connect_blocking(cluster.mysql_dsn)
    try:
        with conn.cursor() as cur:
            cur.execute(sql, args)
            rows = list(cur.fetchall())
        conn.commit()
        return rows
    finally:
        conn.close()


def bindings(cluster: RunningCluster, campaign: int) -> dict[str, str]:
    """visitor -> code, as MySQL records them."""
    rows = query(
        cluster,
        "SELECT visitor, code FROM gift_codes WHERE campaign_id = %s AND visitor IS NOT NULL",
        campaign,
    )
    return {str(visitor): str(code) for visitor, code in rows}


def unclaimed(cluster: RunningCluster, campaign: int) -> int:
    rows = query(
        cluster,
        "SELECT COUNT(*) FROM gift_codes WHERE campaign_id = %s AND visitor IS NULL",
        campaign,
    )
    return int(str(rows[0][0]))


def visitor_id(cookie: str) -> str:
    """The visitor id a signed visitor cookie carries (`<id>~<last banners>.<signature>`)."""
    return cookie.split("~")[0]
