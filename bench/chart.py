"""The chart of a `make bench` run: each endpoint's rate beside the ceiling and its target, and
its latencies at the maximum and at half of it."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from rounds import Row


def chart(rows: Sequence[Row], ceiling: Row, title: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colours = {"hot": "#4c72b0", "uncached": "#dd8452", "fanout": "#55a868", "ceiling": "#8c8c8c"}
    names = [r.endpoint.name for r in (ceiling, *rows)]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(12, 9), constrained_layout=True)
    ys = list(range(len(names)))[::-1]
    top.barh(
        ys,
        [r.rps for r in (ceiling, *rows)],
        color=[colours[r.endpoint.group] for r in (ceiling, *rows)],
    )
    for y, row in zip(ys, (ceiling, *rows), strict=True):
        if row is ceiling:
            label = "ceiling"
        else:
            ratio = f"{row.ratio:.2f}" if row.ratio is not None else "-"
            target = f" (target {row.endpoint.target:.2f})" if row.endpoint.target else ""
            label = f"{ratio}{target}"
        tick = (row.endpoint.target or 0) * ceiling.rps
        if tick:
            top.plot([tick, tick], [y - 0.4, y + 0.4], color="black", linewidth=1.5)
        text = f"  {row.rps:,.0f} req/s, {label}"
        top.text(max(row.rps, tick), y, text, va="center", fontsize=8)
    top.axvline(ceiling.rps, color="#8c8c8c", linestyle="--", linewidth=1)
    top.set_yticks(ys, names)
    top.set_xlim(0, ceiling.rps * 1.45 if ceiling.rps else 1)
    top.set_xlabel("requests/s (median of the rounds); black tick: the target share of the ceiling")
    top.set_title(title, fontsize=10)

    width = 0.27
    xs = range(len(rows))
    bottom.bar([x - width for x in xs], [r.latency("p50") for r in rows], width, label="p50, max")
    bottom.bar(list(xs), [r.latency("p99") for r in rows], width, label="p99, max")
    bottom.bar(
        [x + width for x in xs],
        [r.half_rate.latency_ms["p99"] if r.half_rate else 0 for r in rows],
        width,
        label="p99 at 50 % of max",
    )
    # Each endpoint's own bound (25 ms, the fan-out 50 ms), over its half-rate bar.
    bounds = [(x, r.endpoint.half_rate_target_ms) for x, r in zip(xs, rows, strict=True)]
    marked = [(x, ms) for x, ms in bounds if ms is not None]
    bottom.hlines(
        [ms for _, ms in marked],
        [x + width / 2 for x, _ in marked],
        [x + 1.5 * width for x, _ in marked],
        colors="red", linestyles="--", linewidth=1, label="target (p99 at 50 %)",
    )  # fmt: skip
    bottom.set_xticks(list(xs), [r.endpoint.name for r in rows], rotation=20, ha="right")
    bottom.set_ylabel("latency, ms")
    bottom.set_yscale("log")
    bottom.legend(fontsize=8)
    fig.savefig(path, dpi=110)
    plt.close(fig)
