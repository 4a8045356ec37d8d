"""The admin bearer token check, as a FastAPI dependency."""

from __future__ import annotations

import hmac

from fastapi import Request

from services.common.problems import Unauthorized


async def require_admin(request: Request) -> None:
    expected: str = request.app.state.settings.ADMIN_TOKEN.get_secret_value()
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    # compare_digest: the time taken must not tell how much of the token was right.
    if scheme.lower() != "bearer" or not hmac.compare_digest(token.encode(), expected.encode()):
        raise Unauthorized(
            "admin endpoints need 'Authorization: Bearer <ADMIN_TOKEN>'",
            headers={"WWW-Authenticate": "Bearer"},
        )
