"""Numbers as an operator reads them: about three significant digits, a unit, and a dash for
"no number" (no series, or NaN: a quantile or a share of no requests), never a misleading 0."""

from __future__ import annotations

NONE = "—"


def rate(per_second: float | None) -> str:
    """Requests (or anything) per second."""
    if per_second is None:
        return NONE
    if per_second == 0:
        return "0"
    if per_second < 0.01:
        return "<0.01"
    if per_second < 10:
        return f"{per_second:.2f}"
    if per_second < 100:
        return f"{per_second:.1f}"
    return f"{per_second:,.0f}"


def share(ratio: float | None) -> str:
    """A ratio in 0..1 as a percentage; a tiny non-zero share is not rounded away to 0."""
    if ratio is None:
        return NONE
    if ratio == 0:
        return "0 %"
    percent = ratio * 100
    if percent < 0.1:
        return "<0.1 %"
    return f"{percent:.1f} %"


def seconds(value: float | None) -> str:
    if value is None:
        return NONE
    if value == 0:
        return "0 s"
    if value < 0.001:
        return f"{value * 1e6:.0f} µs"
    if value < 0.01:
        return f"{value * 1e3:.1f} ms"
    if value < 1:
        return f"{value * 1e3:.0f} ms"
    return f"{value:.2f} s"


_BINARY = ("B", "KiB", "MiB", "GiB", "TiB")


def size(value: float | None) -> str:
    """Bytes in binary units, as Redis counts maxmemory (256mb is 256 MiB)."""
    if value is None:
        return NONE
    amount, unit = float(value), 0
    while amount >= 1024 and unit < len(_BINARY) - 1:
        amount, unit = amount / 1024, unit + 1
    if unit == 0:
        return f"{amount:.0f} B"
    return f"{amount:.1f} {_BINARY[unit]}"


def count(value: float | None) -> str:
    if value is None:
        return NONE
    return f"{round(value):,}"
