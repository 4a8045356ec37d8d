"""The visitor, carried in one signed cookie so any replica serves any request statelessly.

The cookie holds a random visitor id (gift codes are claimed by it), the time it was issued and,
per campaign, the banner shown last (so the next pick can avoid it, and so a gift-code claim can
tell that this visitor was served the campaign): `<visitor>~<issued>~<campaign>_<banner>-...`
(characters a cookie value may hold unquoted), signed with BANNER_COOKIE_SECRET (itsdangerous'
Signer, HMAC-SHA256). A visitor can drop the cookie, never forge another visitor's, nor make its
own younger: the issue time is under the signature and checked against BANNER_COOKIE_MAX_AGE_S on
every read, so a cookie not rewritten (by a banner view) within that is a new visitor, whatever
the browser keeps. The payload is plain text rather than itsdangerous' JSON serializer: the
cookie is rewritten on every page view, and the serializer's JSON and compression attempt cost a
visible share of the request. Only the most recent campaigns are remembered, which keeps the
cookie far below browsers' 4 KB limit.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import time
from dataclasses import dataclass, field
from typing import Literal

from itsdangerous import BadSignature, Signer

COOKIE = "quartet_visitor"
MAX_CAMPAIGNS = 32
DEFAULT_MAX_AGE_S = 30 * 24 * 3600
# A cookie dated up to this far in the future is accepted: another replica's clock may run ahead.
CLOCK_SKEW_S = 300
_PAYLOAD = re.compile(
    r"^([0-9a-f]{32})~([0-9]{1,12})~((?:\d{1,10}_\d{1,10}(?:-\d{1,10}_\d{1,10})*)?)$"
)

# What the request's cookie was: none, one that does not verify (tampered, another secret, an
# older format), one past its maximum age, or a valid one.
Origin = Literal["none", "invalid", "expired", "valid"]


@dataclass
class Visitor:
    id: str
    last: dict[str, int] = field(default_factory=dict)
    changed: bool = False
    origin: Origin = "valid"
    issued_at: int = 0

    def last_banner(self, campaign_id: int) -> int | None:
        return self.last.get(str(campaign_id))

    def served(self, campaign_id: int) -> bool:
        """Whether this visitor was shown a banner of the campaign (among its latest 32)."""
        return str(campaign_id) in self.last

    def saw(self, campaign_id: int, banner_id: int) -> None:
        key = str(campaign_id)
        self.last.pop(key, None)
        self.last[key] = banner_id
        while len(self.last) > MAX_CAMPAIGNS:
            del self.last[next(iter(self.last))]
        self.changed = True


class VisitorCookies:
    def __init__(
        self, secret: str, *, max_age_s: int = DEFAULT_MAX_AGE_S, secure: bool = False
    ) -> None:
        self._signer = Signer(secret, salt="quartet.banner.visitor", digest_method=hashlib.sha256)
        self.max_age_s = max_age_s
        # Written by hand: the value holds only cookie-safe characters, and starlette's
        # set_cookie goes through http.cookies, a measurable cost on every view.
        self._attributes = f"; Max-Age={max_age_s}; Path=/; HttpOnly; SameSite=Lax" + (
            "; Secure" if secure else ""
        )

    def read(self, raw: str | None, *, now: float | None = None) -> Visitor:
        origin: Origin = "none"
        if raw:
            origin = "invalid"  # a tampered or foreign cookie is a new visitor, not an error
            try:
                payload = self._signer.unsign(raw).decode()
            except (BadSignature, UnicodeDecodeError):
                payload = ""
            match = _PAYLOAD.match(payload)
            if match:
                issued = int(match[2])
                age = (time.time() if now is None else now) - issued
                if age > self.max_age_s:
                    origin = "expired"
                elif age >= -CLOCK_SKEW_S:
                    pairs = (item.split("_") for item in match[3].split("-") if item)
                    last = {campaign: int(banner) for campaign, banner in pairs}
                    return Visitor(match[1], last, issued_at=issued)
        return Visitor(secrets.token_hex(16), changed=True, origin=origin)

    def dump(self, visitor: Visitor, *, now: float | None = None) -> str:
        visitor.issued_at = int(time.time() if now is None else now)
        last = "-".join(f"{campaign}_{banner}" for campaign, banner in visitor.last.items())
        return self._signer.sign(f"{visitor.id}~{visitor.issued_at}~{last}").decode()

    def set_cookie(self, visitor: Visitor) -> str:
        """The Set-Cookie header's value: the cookie, issued now."""
        return f"{COOKIE}={self.dump(visitor)}{self._attributes}"
