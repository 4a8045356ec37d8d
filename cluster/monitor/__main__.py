"""`python -m cluster.monitor` (`make monitor`): the cluster at a glance, read from Prometheus.

    python -m cluster.monitor [--prometheus URL] [--interval 2] [--once [--at TIME]]

The live view redraws in place every interval until `q` or Ctrl-C; `--once` prints one frame
and exits, for scripts; with `--at` (unix seconds or ISO 8601, UTC unless it says otherwise) the
frame of a past instant, as Prometheus remembers it. The default Prometheus is the local
cluster's (port 9090 shifted by QUARTET_PORT_OFFSET); `--prometheus` reaches a compose or
Kubernetes one (a port-forward).
Exit codes: 0, or 2 when `--once` finds Prometheus not answering or answering nonsense (one line
on stderr says which); the live view keeps retrying instead.
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import sys
import time

from rich.console import Console
from rich.live import Live

from cluster.monitor import frame
from cluster.monitor.keys import Keys
from cluster.monitor.prometheus import Prometheus, PrometheusError, Unreachable
from cluster.monitor.snapshot import take
from cluster.topology import ClusterSettings, Topology

NO_FRAME_EXIT = 2


def local_prometheus() -> str:
    return f"http://127.0.0.1:{Topology(ClusterSettings()).prometheus_port}"


def _url(text: str) -> str:
    # "host:9090" is what people type; httpx would refuse it for want of a scheme.
    return text if "://" in text else f"http://{text}"


def _instant(text: str) -> float:
    try:
        at = float(text)
    except ValueError:
        try:
            when = dt.datetime.fromisoformat(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not unix seconds nor ISO 8601: {text!r}") from None
        at = (when if when.tzinfo else when.replace(tzinfo=dt.UTC)).timestamp()
    # Whole seconds, as the header prints it (see _now).
    return float(math.floor(at))


def parse_arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m cluster.monitor", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "--prometheus",
        type=_url,
        default=None,
        help="Prometheus URL (default: the local cluster's, 9090 + QUARTET_PORT_OFFSET)",
    )
    parser.add_argument("--interval", type=float, default=2.0, help="seconds between frames (2)")
    parser.add_argument("--once", action="store_true", help="print one frame and exit")
    parser.add_argument(
        "--at", type=_instant, default=None, help="with --once: the frame of a past instant"
    )
    args = parser.parse_args(argv)
    if not args.interval > 0:
        parser.error("--interval must be positive")
    if args.at is not None and not args.once:
        parser.error("--at needs --once (the live view shows the present)")
    args.prometheus = args.prometheus or local_prometheus()
    return args


def _now() -> float:
    # Whole seconds: the printed instant is then exactly the one every query was asked at.
    return float(math.floor(time.time()))


def once(prometheus: Prometheus, console: Console, at: float | None = None) -> int:
    try:
        snapshot = take(prometheus, _now() if at is None else at)
    except Unreachable as exc:
        print(f"{exc} (is the cluster up? `make up`, or --prometheus URL)", file=sys.stderr)
        return NO_FRAME_EXIT
    except PrometheusError as exc:
        print(exc, file=sys.stderr)
        return NO_FRAME_EXIT
    console.print(frame.frame(snapshot))
    return 0


def stream(prometheus: Prometheus, console: Console, interval_s: float) -> int:
    """The live view when stdout is no terminal (a log file, a pipe): rich would draw nothing
    until the end, so each frame is printed after the last instead."""
    last: float | None = None
    while True:
        at = _now()
        try:
            console.print(frame.frame(take(prometheus, at), interval_s, keys=False))
            last = at
        except PrometheusError as exc:
            console.print(frame.unreachable(str(exc), prometheus.url, at, last))
        console.print()
        console.file.flush()
        time.sleep(interval_s)


def live(prometheus: Prometheus, console: Console, interval_s: float) -> int:
    if not console.is_terminal:
        return stream(prometheus, console, interval_s)
    last: float | None = None
    # screen=True: the alternate screen, like top; the terminal's contents come back on exit.
    with Keys() as keys, Live(console=console, screen=True, auto_refresh=False) as view:
        while True:
            at = _now()
            try:
                view.update(frame.frame(take(prometheus, at), interval_s), refresh=True)
                last = at
            except PrometheusError as exc:
                view.update(frame.unreachable(str(exc), prometheus.url, at, last), refresh=True)
            if keys.quit_within(interval_s):
                return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_arguments(argv)
    prometheus = Prometheus(args.prometheus)
    try:
        if args.once:
            return once(prometheus, Console(), args.at)
        return live(prometheus, Console(), args.interval)
    except KeyboardInterrupt:
        return 0
    finally:
        prometheus.close()


if __name__ == "__main__":
    sys.exit(main())
