"""`python -m cluster.image` (`make image`): builds or reuses the service and mtail images and
prints what it built: tags, image ids, sizes, and which bases. --gateway also prepares the image
the container tests run the gateway in (the compose image, or its nginx-light stand-in)."""

from __future__ import annotations

import argparse
import sys

from cluster.image import bases, build, engine


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m cluster.image", description=__doc__)
    parser.add_argument(
        "--base",
        choices=["auto", "registry", "local"],
        default="auto",
        help="auto: the Dockerfile's FROM when a registry answers, else local stand-ins",
    )
    wheels = parser.add_mutually_exclusive_group()
    wheels.add_argument(
        "--wheelhouse",
        dest="wheelhouse",
        action="store_true",
        default=None,
        help="install from a wheelhouse downloaded on the host (default: offline only)",
    )
    wheels.add_argument("--no-wheelhouse", dest="wheelhouse", action="store_false")
    parser.add_argument("--gateway", action="store_true", help="also the gateway (test) image")
    args = parser.parse_args()
    try:
        report = build.build_images(args.base, args.wheelhouse)
        gateway = bases.gateway(args.base) if args.gateway else None
    except (engine.EngineUnavailable, engine.DockerError) as exc:
        sys.exit(f"[image] {exc}")
    for line in report.lines():
        print(f"[image] {line}")
    if gateway:
        print(f"[image] gateway (tests): {gateway}")


if __name__ == "__main__":
    main()
