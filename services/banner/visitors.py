"""The visitor, carried in one signed cookie so any replica serves any request statelessly.

The cookie holds a random visitor id (gift codes are claimed by it) and, per campaign, the banner
shown last (so the next pick can avoid it): `<visitor>~<campaign>_<banner>-...` (characters a
cookie value may hold unquoted), signed with
BANNER_COOKIE_SECRET (itsdangerous' Signer, HMAC-SHA256). A visitor can drop the cookie, never
forge another visitor's. The payload is plain text rather than itsdangerous' JSON serializer: the
cookie is rewritten on every page view, and the serializer's JSON and compression attempt cost a
visible share of the request. Only the most recent campaigns are remembered, which keeps the
cookie far below browsers' 4 KB limit.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass, field

from itsdangerous import BadSignature, Signer

COOKIE = "quartet_visitor"
MAX_CAMPAIGNS = 32
MAX_AGE_S = 365 * 24 * 3600
_PAYLOAD = re.compile(r"^([0-9a-f]{32})~((?:\d{1,10}_\d{1,10}(?:-\d{1,10}_\d{1,10})*)?)$")


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
        self._signer = Signer(secret, salt="quartet.banner.visitor", digest_method=hashlib.sha256)

    def read(self, raw: str | None) -> Visitor:
        if raw:
            try:
                payload = self._signer.unsign(raw).decode()
            except BadSignature:
                payload = ""  # a tampered or foreign cookie is a new visitor, not an error
            match = _PAYLOAD.match(payload)
            if match:
                pairs = (item.split("_") for item in match[2].split("-") if item)
                return Visitor(match[1], {campaign: int(banner) for campaign, banner in pairs})
        return Visitor(secrets.token_hex(16), changed=True)

    def dump(self, visitor: Visitor) -> str:
        last = "-".join(f"{campaign}_{banner}" for campaign, banner in visitor.last.items())
        return self._signer.sign(f"{visitor.id}~{last}").decode()
