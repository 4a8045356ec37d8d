"""Reading py-spy's profile of a worker: self time by code area (the project's packages, each
library), and the heaviest frames once the process's trunk is left out. Pure: bench/profiling.py
records the profile."""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field


@dataclass(frozen=True)
class ProfileSummary:
    samples: int
    self_by_area: list[tuple[str, float]]
    top_inclusive: list[tuple[str, float]]
    top_self: list[tuple[str, float]]
    # Inclusive shares of the project's own functions (services/...): the route's real work.
    top_project: list[tuple[str, float]] = field(default_factory=list)


TRUNK_SHARE = 0.97
_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^()]*?)(?::\d+)?\)$")


def frame_area(frame: str) -> str:
    """Where a py-spy frame's code lives: `services/<service>` for the project, else the first
    component of the (package-relative) file name, e.g. `starlette`, `redis`, `asyncio`."""
    match = _FRAME.match(frame)
    if not match:
        return frame
    path = match["file"].replace("\\", "/")
    parts = [p for p in path.split("/") if p]
    if "services" in parts:
        i = parts.index("services")
        return "/".join(parts[i : i + 2]).removesuffix(".py")
    for marker in ("site-packages", "lib"):
        if marker in parts:
            parts = parts[parts.index(marker) + 1 :]
    if not parts:
        return path
    head = parts[0]
    if head.startswith("python3"):
        head = parts[1] if len(parts) > 1 else head
    return head.removesuffix(".py")


def summarize_collapsed(text: str, top: int = 20) -> ProfileSummary:
    """py-spy's `--format raw` output (collapsed stacks: `outer;...;inner <count>` per line)."""
    self_area: Counter[str] = Counter()
    self_func: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in text.splitlines():
        stack, _, count_text = line.rstrip().rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = stack.split(";")
        total += count
        leaf = frames[-1]
        self_func[leaf] += count
        self_area[frame_area(leaf)] += count
        for frame in set(frames):
            if _FRAME.match(frame):  # skip process / thread pseudo-frames
                inclusive[frame] += count

    def shares(counter: Counter[str], n: int) -> list[tuple[str, float]]:
        return [(k, round(v / total, 4)) for k, v in counter.most_common(n)] if total else []

    # Frames on (nearly) every stack are the process's trunk (gunicorn, the event loop): no news.
    trunk = {frame for frame, n in inclusive.items() if n >= TRUNK_SHARE * total}
    for frame in trunk:
        del inclusive[frame]
    return ProfileSummary(
        samples=total,
        self_by_area=shares(self_area, top),
        top_inclusive=shares(inclusive, top),
        top_self=shares(self_func, top),
        top_project=shares(
            Counter({f: n for f, n in inclusive.items() if frame_area(f).startswith("services/")}),
            top,
        ),
    )
