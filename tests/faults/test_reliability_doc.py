"""docs/reliability.md's table of the 5xx a client may see is the one `make chaos` checks
answers against (cluster/chaos/traffic.py): the same rows, word for word."""

from __future__ import annotations

import re

from cluster.chaos.traffic import DOCUMENTED_5XX
from tests.support.datasets import REPO

ROW = re.compile(r"^\| (?P<endpoint>[A-Z]+ [^|]+?) \| (?P<status>5\d\d) \| (?P<when>.+?) \|$")


def test_the_documented_5xx_are_the_ones_chaos_allows() -> None:
    text = (REPO / "docs" / "reliability.md").read_text()
    section = text.split("## The 5xx a client may see", 1)[1].split("\n## ", 1)[0]
    documented = {
        (m["endpoint"], int(m["status"])): m["when"]
        for m in map(ROW.match, section.splitlines())
        if m
    }
    allowed = {
        (endpoint, status): why
        for endpoint, statuses in DOCUMENTED_5XX.items()
        for status, why in statuses.items()
    }
    assert documented == allowed
