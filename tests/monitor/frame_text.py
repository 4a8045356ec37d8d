"""Reading a monitor frame back from its text (`--once`'s stdout, or a tmux pane): its tables by
title, wherever the layout put them, and what range of values a printed number stands for."""

from __future__ import annotations

import datetime as dt
import math
import re

DASH = "—"
_UNITS = {
    "": 1.0,
    "%": 0.01,
    "s": 1.0,
    "ms": 1e-3,
    "µs": 1e-6,
    "B": 1.0,
    "KiB": 1024.0,
    "MiB": 1024.0**2,
    "GiB": 1024.0**3,
    "TiB": 1024.0**4,
}
_NUMBER = re.compile(r"(<)?([0-9][0-9,]*(?:\.([0-9]+))?)(?: ?(%|s|ms|µs|B|KiB|MiB|GiB|TiB))?")
_INSTANT = re.compile(r"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) UTC")


def instant(text: str) -> float:
    """The unix time in the frame's header."""
    found = _INSTANT.search(text)
    assert found, f"no instant in the frame:\n{text}"
    return dt.datetime.strptime(found[1], "%Y-%m-%d %H:%M:%S").replace(tzinfo=dt.UTC).timestamp()


def title_line(text: str, title: str) -> str:
    for line in text.splitlines():
        if title in line:
            return line
    raise AssertionError(f"no {title!r} in the frame:\n{text}")


def table(text: str, title: str) -> list[dict[str, str]]:
    """The rows of the table whose title starts with `title`, as {column: cell}."""
    lines = text.splitlines()
    for index, line in enumerate(lines[:-1]):
        x = line.find(title)
        top = lines[index + 1]
        if x < 0 or top[x : x + 1] != "╭":
            continue
        end = top.index("╮", x) + 1
        header: list[str] | None = None
        rows: list[dict[str, str]] = []
        for body in lines[index + 2 :]:
            piece = body[x:end]
            if piece.startswith("╰"):
                return rows
            if piece.startswith("├"):
                continue
            assert piece.startswith("│"), f"{title}: {piece!r}"
            assert piece.endswith("│"), f"{title}: {piece!r}"
            cells = [cell.strip() for cell in piece[1:-1].split("│")]
            if header is None:
                header = cells
            else:
                rows.append(dict(zip(header, cells, strict=True)))
        raise AssertionError(f"the table {title!r} does not end:\n{text}")
    raise AssertionError(f"no table titled {title!r} in the frame:\n{text}")


def span(cell: str) -> tuple[float, float] | None:
    """The values a printed number may stand for, given its rounding; None for the dash."""
    if cell == DASH:
        return None
    found = _NUMBER.fullmatch(cell)
    assert found, f"not a number the monitor prints: {cell!r}"
    below, digits, decimals, unit = found[1], found[2], found[3], found[4] or ""
    number, scale = float(digits.replace(",", "")), _UNITS[unit]
    if below:
        return (0.0, number * scale)
    half = 0.5 * 10.0 ** -len(decimals or "")
    return ((number - half) * scale, (number + half) * scale)


def shows(cell: str, value: float | None, slack: float = 1e-9) -> bool:
    """Whether `cell` is how the monitor may print `value` (None or NaN: no number)."""
    if value is None or math.isnan(value):
        return cell == DASH
    bounds = span(cell)
    if bounds is None:
        return False
    low, high = bounds
    pad = slack * abs(value) + 1e-12
    return low - pad <= value <= high + pad
