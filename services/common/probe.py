"""The container's HEALTHCHECK: `python -m services.common.probe [PATH]` exits 0 when the service
on $PORT answers PATH (default /healthz) with 200. The image has no curl; this needs nothing but
the standard library and starts in a few milliseconds."""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request


def healthy(path: str, port: int, timeout_s: float = 2.0) -> bool:
    url = f"http://127.0.0.1:{port}{path}"
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def main() -> None:
    path = sys.argv[1] if len(sys.argv) > 1 else "/healthz"
    sys.exit(0 if healthy(path, int(os.environ.get("PORT", "8000"))) else 1)


if __name__ == "__main__":
    main()
