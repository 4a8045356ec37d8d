"""Secrets copied from an example are refused outside development.

`.env.example` says "change-me" where a secret goes; people copy such files. A cluster that runs
with one of those values is as open as one with no secret at all, so every service refuses to
start with one (settings.py), and so does the compose stack before its databases and Grafana
start (`python -m services.common.placeholders NAME ...`, the `secrets-check` job): MariaDB and
Grafana would otherwise take any password they are given.

    python -m services.common.placeholders MYSQL_PASSWORD GRAFANA_ADMIN_PASSWORD ...

exits 1 naming (never showing) each variable that is unset, shorter than 16 characters, or a
placeholder, unless ENVIRONMENT=development.
"""

from __future__ import annotations

import os
import re
import sys

WORDS = ("changeme", "changethis", "replaceme", "placeholder", "example")
MIN_LENGTH = 16


def is_placeholder(value: str) -> bool:
    """True for a value that reads like an example's: the words above, letters only, any case."""
    folded = re.sub(r"[^a-z]", "", value.lower())
    return any(word in folded for word in WORDS)


def problem(name: str, value: str | None) -> str | None:
    """Why the secret in `name` is unusable, without a character of it; None when it is fine."""
    if not value:
        return f"{name} is not set"
    if len(value) < MIN_LENGTH:
        return f"{name} must be at least {MIN_LENGTH} characters"
    if is_placeholder(value):
        return f"{name} is a placeholder; set a real secret"
    return None


def main() -> None:
    if os.environ.get("ENVIRONMENT", "development") == "development":
        return
    found = [p for name in sys.argv[1:] if (p := problem(name, os.environ.get(name)))]
    for line in found:
        print(line, file=sys.stderr)
    sys.exit(1 if found else 0)


if __name__ == "__main__":
    main()
