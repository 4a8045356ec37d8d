"""The visitor, carried in one signed cookie so any replica serves any request statelessly.

The cookie holds a random visitor id (gift codes are claimed by it) and, per campaign, the banner
shown last (so the next pick can avoid it). It is signed with BANNER_COOKIE_SECRET (itsdangerous,
HMAC-SHA1 over the JSON): a visitor can drop the cookie, never forge another visitor's. Only the
most recent campaigns are remembered, which keeps the cookie far below browsers' 4 KB limit.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field

from itsdangerous import BadSignature, URLSafeSerializer

COOKIE = "quartet_visitor"
MAX_CAMPAIGNS = 32
MAX_AGE_S = 365 * 24 * 3600


@dataclass
class Visitor:
    id: str
    last: dict[str, int] = field(default_factory=dict)
    changed: bool = False

    def last_banner(self, campaign_id: int) -> int | None:
        return self.last.get(str(campaign_id))

    def saw(self, campaign_id: int, banner_id: int) -> None:
        key = str(campaign_id)
        self.last.pop(key, None)
        self.last[key] = banner_id
        while len(self.last) > MAX_CAMPAIGNS:
            del self.last[next(iter(self.last))]
        self.changed = True


class VisitorCookies:
    def __init__(self, secret: str) -> None:
        self._serializer = URLSafeSerializer(secret, salt="quartet.banner.visitor")

    def read(self, raw: str | None) -> Visitor:
        if raw:
            try:
                data = self._serializer.loads(raw)
                visitor_id, last = data["v"], data["l"]
                if isinstance(visitor_id, str) and isinstance(last, dict):
                    return Visitor(visitor_id, {str(k): int(v) for k, v in last.items()})
            except (BadSignature, KeyError, TypeError, ValueError):
                pass  # a tampered or stale cookie is a new visitor, not an error
        return Visitor(secrets.token_hex(16), changed=True)

    def dump(self, visitor: Visitor) -> str:
        return str(self._serializer.dumps({"v": visitor.id, "l": visitor.last}))
