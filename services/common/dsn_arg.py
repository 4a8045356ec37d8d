"""The `--dsn` argument of the command-line tools (migrations, ingest, repool, generators)."""

from __future__ import annotations

import argparse
import os
import sys


def add_dsn_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dsn", default=os.environ.get("MYSQL_DSN"), help="default: $MYSQL_DSN")


def dsn_of(args: argparse.Namespace) -> str:
    """The DSN given, or exit with the message a person at a terminal needs."""
    dsn = args.dsn
    if not isinstance(dsn, str) or not dsn:
        sys.exit("MYSQL_DSN is not set (pass --dsn or export MYSQL_DSN)")
    return dsn
