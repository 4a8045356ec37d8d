"""The pure part of `make bench` (bench/run.py): what is measured, how wrk's answer is read, the
ratios and targets, the pacing of the half-rate runs, and the profile's summary. No I/O here, so
tests/bench checks it without a cluster."""

from __future__ import annotations

import json
import re
import statistics
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

Group = Literal["ceiling", "hot", "uncached", "fanout"]
# The targets, as a share of the ceiling (the stack's trivial endpoint through nginx).
TARGET_RATIO: Mapping[str, float] = {"hot": 0.70, "uncached": 0.25, "fanout": 0.30}
# p99 at half of the measured maximum rate, for every endpoint but the fan-out ones.
HALF_RATE_P99_TARGET_MS = 25.0
MARKER = "BENCH_JSON "


@dataclass(frozen=True)
class Endpoint:
    """One thing measured. `path` may hold {campaign}, {page}, {cookie}-free placeholders that
    run.py fills in; `script` are wrk.lua options; `service` is whose worker the profile samples."""

    name: str
    group: Group
    service: str
    path: str
    script: tuple[str, ...] = ()
    cookie: bool = False

    @property
    def target(self) -> float | None:
        return TARGET_RATIO.get(self.group)

    @property
    def half_rate_target_ms(self) -> float | None:
        return HALF_RATE_P99_TARGET_MS if self.group in ("hot", "uncached") else None


CEILING = Endpoint("trivial (ceiling)", "ceiling", "counter", "/_ping/counter")
ENDPOINTS: tuple[Endpoint, ...] = (
    Endpoint("banner page", "hot", "banner", "/campaigns/{campaign}", cookie=True),
    Endpoint("banner JSON", "hot", "banner", "/api/campaigns/{campaign}/banner", cookie=True),
    Endpoint("visit POST", "hot", "counter", "/visits/{page}", script=("method=POST",)),
    Endpoint("visit GET", "hot", "counter", "/visits/{page}"),
    Endpoint("recommend cached", "hot", "recommender", "/recommend/42"),
    # The path is the script's: a never-seen user id per request.
    Endpoint("recommend uncached", "uncached", "recommender", "/", script=("cold",)),
    Endpoint(
        "batch of 20",
        "hot",
        "recommender",
        "/batch-recommend?user_ids=" + ",".join(str(i) for i in range(1, 21)),
    ),
    Endpoint("/api/first", "fanout", "aggregator", "/api/first?timeout=1000"),
    Endpoint("/api/smart", "fanout", "aggregator", "/api/smart?timeout=1000"),
    Endpoint(
        "page composition",
        "fanout",
        "aggregator",
        "/api/page/{page}?campaign_id={campaign}&user_id=42",
        script=('expect="errors":{}',),
        cookie=True,
    ),
)


def endpoint_named(name: str) -> Endpoint:
    for endpoint in (CEILING, *ENDPOINTS):
        if endpoint.name == name:
            return endpoint
    raise KeyError(f"no endpoint {name!r}; known: {[e.name for e in (CEILING, *ENDPOINTS)]}")


# --- one wrk run -----------------------------------------------------------------------------


@dataclass(frozen=True)
class WrkResult:
    requests: int
    duration_s: float
    errors: Mapping[str, int]
    latency_ms: Mapping[str, float]
    bad_bodies: int = 0

    @property
    def rps(self) -> float:
        return self.requests / self.duration_s if self.duration_s > 0 else 0.0

    @property
    def non_2xx(self) -> int:
        """Answers with a status >= 400 (wrk counts 3xx as fine; no endpoint here redirects)."""
        return self.errors.get("status", 0)

    @property
    def socket_errors(self) -> int:
        return sum(v for k, v in self.errors.items() if k != "status")

    @property
    def failures(self) -> list[str]:
        """Why this run cannot be trusted as a measurement of a working endpoint."""
        found = []
        if self.requests == 0:
            found.append("no request completed")
        if self.non_2xx:
            found.append(f"{self.non_2xx} answers with status >= 400")
        if self.socket_errors:
            detail = ", ".join(f"{k} {v}" for k, v in self.errors.items() if k != "status" and v)
            found.append(f"socket errors: {detail}")
        if self.bad_bodies:
            found.append(f"{self.bad_bodies} answers without the expected body")
        return found

    def to_json(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "duration_s": round(self.duration_s, 3),
            "rps": round(self.rps, 1),
            "latency_ms": dict(self.latency_ms),
            "errors": dict(self.errors),
            "bad_bodies": self.bad_bodies,
        }


def parse_wrk(output: str) -> WrkResult:
    """The `BENCH_JSON` line wrk.lua's done() prints (after wrk's own report)."""
    for line in output.splitlines():
        if line.startswith(MARKER):
            data = json.loads(line[len(MARKER) :])
            latency = {k: v / 1000 for k, v in data["latency_us"].items()}
            return WrkResult(
                requests=int(data["requests"]),
                duration_s=data["duration_us"] / 1e6,
                errors={k: int(v) for k, v in data["errors"].items()},
                latency_ms=latency,
                bad_bodies=int(data.get("bad_bodies", 0)),
            )
    raise ValueError(f"no {MARKER.strip()} line in wrk's output: {output[-500:]!r}")


# --- rounds, ratios, targets -----------------------------------------------------------------


@dataclass
class Row:
    """One endpoint over every round: the median of the rounds, and the ratio to the ceiling of
    the same round (the mean of the ceiling measured at the start and end of that round)."""

    endpoint: Endpoint
    runs: list[WrkResult] = field(default_factory=list)
    ratios: list[float] = field(default_factory=list)
    half_rate: WrkResult | None = None
    half_rate_goal_rps: float | None = None
    # CPU cores each process group used during each measured run (see process_group).
    cpu: list[Mapping[str, float]] = field(default_factory=list)

    @property
    def cpu_cores(self) -> dict[str, float]:
        """Median over the runs of the cores each group used, busiest first."""
        groups = {g for run in self.cpu for g in run}
        medians = {g: statistics.median(run.get(g, 0.0) for run in self.cpu) for g in groups}
        return dict(sorted(((g, round(v, 2)) for g, v in medians.items() if v >= 0.005),
                           key=lambda item: -item[1]))  # fmt: skip

    @property
    def rps(self) -> float:
        return statistics.median(r.rps for r in self.runs) if self.runs else 0.0

    @property
    def ratio(self) -> float | None:
        return statistics.median(self.ratios) if self.ratios else None

    def latency(self, key: str) -> float:
        return statistics.median(r.latency_ms[key] for r in self.runs) if self.runs else 0.0

    @property
    def non_2xx(self) -> int:
        return sum(r.non_2xx for r in self.runs)

    @property
    def meets_target(self) -> bool | None:
        target, ratio = self.endpoint.target, self.ratio
        return None if target is None or ratio is None else ratio >= target

    @property
    def meets_half_rate_target(self) -> bool | None:
        target = self.endpoint.half_rate_target_ms
        if target is None or self.half_rate is None:
            return None
        return self.half_rate.latency_ms["p99"] <= target

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.endpoint.name,
            "group": self.endpoint.group,
            "path": self.endpoint.path,
            "rps": round(self.rps, 1),
            "rps_rounds": [round(r.rps, 1) for r in self.runs],
            "ratio": None if self.ratio is None else round(self.ratio, 3),
            "ratio_rounds": [round(r, 3) for r in self.ratios],
            "target_ratio": self.endpoint.target,
            "meets_target": self.meets_target,
            "p50_ms": round(self.latency("p50"), 2),
            "p99_ms": round(self.latency("p99"), 2),
            "non_2xx": self.non_2xx,
            "cpu_cores": self.cpu_cores,
            "half_rate": None
            if self.half_rate is None
            else {
                "goal_rps": None
                if self.half_rate_goal_rps is None
                else round(self.half_rate_goal_rps, 1),
                "achieved_rps": round(self.half_rate.rps, 1),
                "p50_ms": round(self.half_rate.latency_ms["p50"], 2),
                "p99_ms": round(self.half_rate.latency_ms["p99"], 2),
                "target_p99_ms": self.endpoint.half_rate_target_ms,
                "meets_target": self.meets_half_rate_target,
                "non_2xx": self.half_rate.non_2xx,
            },
            "runs": [r.to_json() for r in self.runs],
        }


def round_ratio(result: WrkResult, ceilings: Sequence[WrkResult]) -> float:
    """An endpoint's rate over the mean rate of its round's ceiling runs."""
    ceiling = statistics.fmean(c.rps for c in ceilings)
    return result.rps / ceiling if ceiling > 0 else 0.0


# --- where the machine's CPU goes during a run -------------------------------------------------

SERVICES = ("counter", "banner", "recommender", "aggregator")


def process_group(argv: Sequence[str]) -> str:
    """Which part of the stack a process is, from its command line (/proc/<pid>/cmdline)."""
    line = " ".join(argv)
    program = Path(argv[0]).name if argv and argv[0] else ""
    if "gunicorn" in line:
        return next((s for s in SERVICES if f"services.{s}." in line), "gunicorn")
    if "services.worksim" in line:
        return "worksim"
    if "supervisord" in line:
        return "supervisord"
    if program.startswith("nginx") or line.startswith("nginx:"):
        return "nginx"
    if program.startswith("redis-server") or line.startswith("redis-server"):
        return "redis"
    if program.startswith(("mariadbd", "mysqld")):
        return "mariadb"
    if program.startswith(("prometheus", "mtail")) or "exporter" in program:
        return "monitoring"
    if program == "wrk":
        return "wrk"
    return "other"


def cpu_cores(
    before: Mapping[str, float], after: Mapping[str, float], seconds: float
) -> dict[str, float]:
    """CPU seconds per group over a window -> cores used on average."""
    if seconds <= 0:
        return {}
    return {
        group: (after[group] - before.get(group, 0.0)) / seconds
        for group in after
        if after[group] - before.get(group, 0.0) > 0
    }


# --- the paced (half-rate) runs ---------------------------------------------------------------


def pacing_delay_ms(connections: int, goal_rps: float, latency_ms: float) -> float:
    """The mean delay before each request that makes `connections` closed-loop connections send
    `goal_rps` in total when each answer takes `latency_ms`: c / rate = delay + latency."""
    return max(0.0, 1000 * connections / goal_rps - latency_ms)


def recalibrate_delay_ms(
    connections: int, goal_rps: float, delay_ms: float, achieved_rps: float
) -> float:
    """After a trial at `delay_ms` reached `achieved_rps`: the latency it implies, then the delay
    for the goal."""
    if achieved_rps <= 0:
        return delay_ms
    implied_latency = 1000 * connections / achieved_rps - delay_ms
    return pacing_delay_ms(connections, goal_rps, max(0.0, implied_latency))


# --- choosing what to profile, and reading the profile ------------------------------------------


def worst_against_target(rows: Iterable[Row]) -> Row | None:
    """The endpoint furthest below (or least above) its target ratio: the one to profile."""
    scored = [
        (row.ratio / row.endpoint.target, row)
        for row in rows
        if row.endpoint.target and row.ratio is not None
    ]
    return min(scored, key=lambda pair: pair[0])[1] if scored else None


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


def format_table(rows: Sequence[Row], ceiling: Row) -> str:
    """The plain-text table run.py prints (and docs/performance.md shows)."""
    head = (
        f"{'endpoint':<20} {'req/s':>7} {'ratio':>5} {'target':>6} {'met':>3} {'p50 ms':>7} "
        f"{'p99 ms':>7} {'non-2xx':>7} | {'@50% req/s':>10} {'p50 ms':>7} {'p99 ms':>7} {'met':>3}"
    )
    lines = [head, "-" * len(head)]

    def mark(value: bool | None) -> str:
        return "-" if value is None else ("yes" if value else "NO")

    for row in (ceiling, *rows):
        is_ceiling = row is ceiling
        ratio = "1.00" if is_ceiling else (f"{row.ratio:.2f}" if row.ratio is not None else "-")
        target = f"{row.endpoint.target:.2f}" if row.endpoint.target else "-"
        half = row.half_rate
        lines.append(
            f"{row.endpoint.name:<20} {row.rps:>7.0f} {ratio:>5} {target:>6} "
            f"{'' if is_ceiling else mark(row.meets_target):>3} {row.latency('p50'):>7.1f} "
            f"{row.latency('p99'):>7.1f} {row.non_2xx:>7} | "
            + (
                f"{half.rps:>10.0f} {half.latency_ms['p50']:>7.1f} {half.latency_ms['p99']:>7.1f} "
                f"{mark(row.meets_half_rate_target):>3}"
                if half is not None
                else f"{'-':>10} {'-':>7} {'-':>7} {'-':>3}"
            )
        )
    return "\n".join(lines)
