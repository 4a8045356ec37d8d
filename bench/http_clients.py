"""CPU cost per call of three async HTTP clients, against a local nginx.

Measures how much CPU the *calling* process spends per HTTP GET (``time.process_time()`` deltas
over a measured batch, not wall time) for:

1. ``httpx.AsyncClient`` with its default transport (httpcore),
2. ``httpx.AsyncClient`` with ``httpx_aiohttp.AiohttpTransport`` (package ``httpx-aiohttp``),
3. ``aiohttp.ClientSession`` directly.

Each cell (client x concurrency) runs in a fresh uvloop event loop. The client is created once
per cell with a keep-alive pool sized to the concurrency, warmed up with ``--warmup`` calls (at
least 5 per connection; this opens the pool's connections and lets httpcore get past its
expensive start, see below), then ``--calls`` GETs are made by ``concurrency`` worker tasks that
each keep one call in flight. Every call reads the whole body and checks for status 200;
anything else counts as an error. The body is not JSON-decoded: that cost does not depend on the
client.

By default the script starts its own nginx (``worker_processes 1``, ``access_log off``, answering
every request with ``200 {"time":123}``) on a free loopback port in a temporary prefix, and stops
it when done; nginx is a separate process, so its CPU is not counted. ``--url`` measures against
an existing server instead.

Two things in the httpx (httpcore) numbers that are not noise:

* httpcore 1.0.x walks every pooled connection, and for each idle one every connection again, on
  each request and each release (encode/httpcore#1035), so its cost grows with the pool size. For
  the first few hundred calls after a 64- or 192-connection pool fills it can cost 5-13 CPU ms per
  call before settling; the warm-up is long enough to measure the settled state.
* anyio >= 4.11 no longer pulls in sniffio, and httpcore 1.0.9 then retries a failing
  ``import sniffio`` on every lock setup (encode/httpcore#1103). Whether sniffio is importable is
  recorded in the output.

Run::

    .venv/bin/python bench/http_clients.py [--calls 3000] [--json out.json]

Needs ``httpx``, ``aiohttp`` and ``uvloop``; without ``httpx-aiohttp`` installed that client is
skipped with a note.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import platform
import shutil
import statistics
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import uvloop
from trivial_nginx import local_nginx, nginx_version, wait_until_answers

try:
    from httpx_aiohttp import AiohttpTransport
except ImportError:  # pragma: no cover - depends on the environment
    AiohttpTransport = None  # type: ignore[assignment,misc]

CONCURRENCIES = (1, 16, 64, 192)
TIMEOUT_S = 30.0
SLICES = 10

Call = Callable[[], Awaitable[bool]]
ClientFactory = Callable[[str, int], contextlib.AbstractAsyncContextManager[Call]]
# --------------------------------------------------------------------------------------------
# Clients: each factory is an async context manager that owns one client for one cell and
# yields a zero-argument coroutine function making one call (True when it got a 200).


def _limits(concurrency: int) -> httpx.Limits:
    return httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)


@contextlib.asynccontextmanager
async def httpx_default(url: str, concurrency: int) -> AsyncIterator[Call]:
    async with httpx.AsyncClient(limits=_limits(concurrency), timeout=TIMEOUT_S) as client:

        async def call() -> bool:
            response = await client.get(url)
            return response.status_code == 200 and bool(response.content)

        yield call


@contextlib.asynccontextmanager
async def httpx_aiohttp(url: str, concurrency: int) -> AsyncIterator[Call]:
    assert AiohttpTransport is not None
    # With an explicit transport httpx ignores its own `limits`: the transport sizes the pool.
    transport = AiohttpTransport(limits=_limits(concurrency))
    async with httpx.AsyncClient(transport=transport, timeout=TIMEOUT_S) as client:

        async def call() -> bool:
            response = await client.get(url)
            return response.status_code == 200 and bool(response.content)

        yield call


@contextlib.asynccontextmanager
async def aiohttp_session(url: str, concurrency: int) -> AsyncIterator[Call]:
    connector = aiohttp.TCPConnector(limit=concurrency, limit_per_host=0)
    timeout = aiohttp.ClientTimeout(total=TIMEOUT_S)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def call() -> bool:
            async with session.get(url) as response:
                body = await response.read()
                return response.status == 200 and bool(body)

        yield call


CLIENTS: dict[str, ClientFactory] = {
    "httpx (httpcore)": httpx_default,
    "httpx + httpx-aiohttp": httpx_aiohttp,
    "aiohttp": aiohttp_session,
}

CALL_ERRORS = (httpx.HTTPError, aiohttp.ClientError, OSError, asyncio.TimeoutError)


# --------------------------------------------------------------------------------------------
# Measurement


@dataclass
class Cell:
    client: str
    concurrency: int
    calls: int
    errors: int
    cpu_s: float
    wall_s: float
    first_error: str | None = None
    # CPU ms per call over consecutive slices of the measured run (taken without pausing it).
    slices_ms: list[float] = field(default_factory=list)

    @property
    def cpu_ms_per_call(self) -> float:
        return 1000.0 * self.cpu_s / self.calls

    @property
    def calls_per_s(self) -> float:
        return self.calls / self.wall_s

    @property
    def slices_min_med_max(self) -> tuple[float, float, float]:
        if not self.slices_ms:
            return (self.cpu_ms_per_call,) * 3
        return min(self.slices_ms), statistics.median(self.slices_ms), max(self.slices_ms)

    @property
    def cpu_util(self) -> float:
        """Fraction of one core the client process used while measuring."""
        return self.cpu_s / self.wall_s

    def as_json(self) -> dict[str, Any]:
        return asdict(self) | {
            "cpu_ms_per_call": self.cpu_ms_per_call,
            "calls_per_s": self.calls_per_s,
            "cpu_util": self.cpu_util,
        }


async def _drive(
    call: Call, concurrency: int, total: int, marks: list[float] | None = None, slices: int = 1
) -> tuple[int, str | None]:
    """Make `total` calls with `concurrency` of them in flight; return (errors, first error).

    With `marks`, appends `time.process_time()` each time another `total / slices` calls have
    completed.
    """
    remaining = total
    done = 0
    errors = 0
    first_error: str | None = None
    slice_size = max(1, total // slices)

    async def worker() -> None:
        nonlocal remaining, done, errors, first_error
        while remaining > 0:
            remaining -= 1
            try:
                ok = await call()
            except CALL_ERRORS as exc:
                ok = False
                if first_error is None:
                    first_error = f"{type(exc).__name__}: {exc}"
            if not ok:
                errors += 1
                if first_error is None:
                    first_error = "non-200 status or empty body"
            done += 1
            if marks is not None and done % slice_size == 0:
                marks.append(time.process_time())

    await asyncio.gather(*(worker() for _ in range(min(concurrency, total))))
    return errors, first_error


async def _cell(
    name: str, factory: ClientFactory, url: str, concurrency: int, calls: int, warmup: int
) -> Cell:
    async with factory(url, concurrency) as call:
        await _drive(call, concurrency, max(warmup, 5 * concurrency))
        marks: list[float] = []
        cpu0, wall0 = time.process_time(), time.perf_counter()
        errors, first_error = await _drive(call, concurrency, calls, marks, SLICES)
        cpu1, wall1 = time.process_time(), time.perf_counter()
    slice_size = max(1, calls // SLICES)
    points = [cpu0, *marks]
    slices_ms = [1000.0 * (b - a) / slice_size for a, b in itertools.pairwise(points)]
    return Cell(
        name, concurrency, calls, errors, cpu1 - cpu0, wall1 - wall0, first_error, slices_ms
    )


def measure(
    url: str,
    clients: dict[str, ClientFactory],
    concurrencies: tuple[int, ...],
    calls: int,
    warmup: int,
) -> list[Cell]:
    cells: list[Cell] = []
    # Concurrency outer, clients inner: the clients of one concurrency run close together in
    # time, so slow drifts of the machine hit them alike.
    for concurrency in concurrencies:
        for name, factory in clients.items():
            cell = uvloop.run(_cell(name, factory, url, concurrency, calls, warmup))
            print(
                f"  {name:<22} c={concurrency:<4} {cell.cpu_ms_per_call:.3f} CPU ms/call  "
                f"{cell.calls_per_s:,.0f} calls/s  errors={cell.errors}",
                file=sys.stderr,
                flush=True,
            )
            cells.append(cell)
    return cells


# --------------------------------------------------------------------------------------------
# Output


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def markdown_table(cells: list[Cell]) -> str:
    lines = [
        "| client | in flight | calls | CPU ms/call | slices min / med / max "
        "| calls/s (wall) | client CPU % | errors |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for c in cells:
        lo, med, hi = c.slices_min_med_max
        lines.append(
            f"| {c.client} | {c.concurrency} | {c.calls} | {c.cpu_ms_per_call:.3f} | "
            f"{lo:.3f} / {med:.3f} / {hi:.3f} | {c.calls_per_s:,.0f} | {100 * c.cpu_util:.0f} | "
            f"{c.errors} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--calls", type=int, default=3000, help="measured calls per cell")
    parser.add_argument(
        "--warmup", type=int, default=1000, help="warm-up calls per cell (at least 5 x in flight)"
    )
    parser.add_argument(
        "--concurrency",
        default=",".join(map(str, CONCURRENCIES)),
        help="comma-separated calls in flight (default %(default)s)",
    )
    parser.add_argument("--url", help="measure against this server instead of a local nginx")
    parser.add_argument("--nginx", default=shutil.which("nginx") or "/usr/sbin/nginx")
    parser.add_argument("--json", type=Path, help="also write the results as JSON here")
    args = parser.parse_args(argv)
    concurrencies = tuple(int(c) for c in args.concurrency.split(","))

    clients = dict(CLIENTS)
    notes: list[str] = []
    if AiohttpTransport is None:
        del clients["httpx + httpx-aiohttp"]
        notes.append("httpx-aiohttp is not installed: that client was skipped")
        print(f"note: {notes[-1]}", file=sys.stderr)

    meta: dict[str, Any] = {
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "httpx": _version("httpx"),
        "httpcore": _version("httpcore"),
        "httpx-aiohttp": _version("httpx-aiohttp") if AiohttpTransport is not None else None,
        "aiohttp": _version("aiohttp"),
        "uvloop": _version("uvloop"),
        "sniffio": _version("sniffio"),
        "calls_per_cell": args.calls,
        "warmup_per_cell": args.warmup,
        "notes": notes,
    }

    with contextlib.ExitStack() as stack:
        if args.url:
            url = args.url
            wait_until_answers(url, None, timeout_s=5.0)
            meta["server"] = url
        else:
            url = stack.enter_context(local_nginx(args.nginx))
            meta["server"] = f"{nginx_version(args.nginx)} (local, worker_processes 1)"
        meta["url"] = url
        print(f"measuring {url} with {args.calls} calls per cell", file=sys.stderr)
        meta["loadavg_before"] = os.getloadavg()
        cells = measure(url, clients, concurrencies, args.calls, args.warmup)
        meta["loadavg_after"] = os.getloadavg()

    print(
        "versions: "
        + ", ".join(f"{k} {meta[k]}" for k in ("httpx", "httpcore", "httpx-aiohttp", "aiohttp"))
        + f", uvloop {meta['uvloop']}, sniffio {meta['sniffio'] or 'not installed'}"
        + f", Python {meta['python']}, {meta['cpus']} CPUs"
    )
    print(f"server: {meta['server']}; {args.calls} calls per cell after {args.warmup} warm-up")
    print(
        "load average (1 min) before/after: "
        f"{meta['loadavg_before'][0]:.2f} / {meta['loadavg_after'][0]:.2f}"
    )
    print()
    print(markdown_table(cells))
    for note in notes:
        print(f"\nNote: {note}")
    errors = [c for c in cells if c.first_error]
    for c in errors:
        print(f"\n{c.client} c={c.concurrency}: first error: {c.first_error}")

    if args.json:
        report = {"meta": meta, "results": [c.as_json() for c in cells]}
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
