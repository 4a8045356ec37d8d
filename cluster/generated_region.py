"""Generated regions inside hand-written files: the lines between a BEGIN and an END marker are
rewritten from the description, everything around them stays as written.

Used where a file is mostly hand-tuned (its comments, its non-service jobs) and only a per-service
list follows services/common/description.py: the Prometheus configurations, k8s/base's resource
list. A whole generated file (k8s/base/<service>.yaml) needs none of this.
"""

from __future__ import annotations

import re
from pathlib import Path

SOURCE = "services/common/description.py"
COMMAND = "python -m cluster.generate"


def begin(name: str) -> str:
    return f"# BEGIN {name} (generated from {SOURCE} by `{COMMAND}`)"


def end(name: str) -> str:
    return f"# END {name}"


def replace(text: str, name: str, body: str, where: str) -> str:
    """`text` with region `name`'s lines replaced by `body`, kept at the BEGIN marker's indent.

    `where` names the file in the error that a missing or doubled marker raises."""
    pattern = re.compile(
        rf"^(?P<indent>[ \t]*){re.escape(begin(name))}\n.*?^[ \t]*{re.escape(end(name))}\n",
        re.M | re.S,
    )
    found = pattern.findall(text)
    if len(found) != 1:
        raise ValueError(
            f"{where}: expected one region {name!r} between the lines {begin(name)!r} "
            f"and {end(name)!r}, found {len(found)}"
        )

    def filled(match: re.Match[str]) -> str:
        indent = match["indent"]
        lines = [f"{indent}{line}" if line else "" for line in body.rstrip("\n").split("\n")]
        return "\n".join([f"{indent}{begin(name)}", *lines, f"{indent}{end(name)}"]) + "\n"

    return pattern.sub(filled, text)


def regenerate(root: Path, path: str, regions: dict[str, str]) -> str:
    """The file at `path` (repo-relative) with every named region rewritten."""
    text = (root / path).read_text()
    for name, body in regions.items():
        text = replace(text, name, body, path)
    return text
