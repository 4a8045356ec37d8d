"""What a bench script tells its operator while it runs: on stderr, so stdout stays the report."""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Iterator


def log(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


@contextlib.contextmanager
def step(name: str) -> Iterator[None]:
    started = time.monotonic()
    log(f"{name} ...")
    yield
    log(f"{name}: {time.monotonic() - started:.0f}s")
