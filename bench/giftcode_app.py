"""The banner app that bench/giftcode_claims.py serves: the working tree's, or, with
BENCH_GIFTCODES_REV set, with the gift-code claim (`GiftCodes`) of that git revision swapped in,
behind the current interface (`adapted`: its claim is the old one, unchanged).

    gunicorn -c python:services.common.gunicorn_conf --pythonpath bench giftcode_app:app
"""

from __future__ import annotations

import functools
import os
import subprocess
import sys
import types
from pathlib import Path
from typing import Any

import prometheus_client

from services.banner import app as banner_app
from services.banner.minting import Minted

ROOT = Path(__file__).resolve().parent.parent


def giftcodes_of(rev: str) -> types.ModuleType:
    """services/banner/giftcodes.py as it was at `rev`, as a module of its own."""
    source = subprocess.run(
        ["git", "show", f"{rev}:services/banner/giftcodes.py"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    # Its metrics have the current module's names: kept out of the registry (no duplicates).
    shim = types.ModuleType("prometheus_client")
    shim.__dict__.update(prometheus_client.__dict__)
    shim.Counter = functools.partial(prometheus_client.Counter, registry=None)  # type: ignore[attr-defined]
    shim.Gauge = functools.partial(prometheus_client.Gauge, registry=None)  # type: ignore[attr-defined]
    module = types.ModuleType(f"giftcodes_at_{rev}")
    sys.modules["prometheus_client"] = shim
    try:
        exec(compile(source, f"{rev}:services/banner/giftcodes.py", "exec"), module.__dict__)  # noqa: S102
    finally:
        sys.modules["prometheus_client"] = prometheus_client
    return module


def adapted(old: Any) -> Any:
    """The old `GiftCodes` as the current app calls it: `mint(..., key=)` answering `Minted`
    (the old one took no key and answered (minted, available); the bench mints without a key),
    and `close()` where it had none (the old claim leaves no background work)."""

    class Adapted(old):  # type: ignore[misc]
        async def mint(self, campaign_id: int, count: int, *, key: str | None = None) -> Minted:
            if key is not None:
                raise ValueError("the old mint takes no Idempotency-Key")
            minted, available = await super().mint(campaign_id, count)
            return Minted(count, int(minted), int(available))

        async def close(self) -> None:
            if hasattr(old, "close"):
                await super().close()

    return Adapted


_rev = os.environ.get("BENCH_GIFTCODES_REV")
if _rev:
    banner_app.GiftCodes = adapted(giftcodes_of(_rev).GiftCodes)  # type: ignore[attr-defined]
app = banner_app.build_app()
