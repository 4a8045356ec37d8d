"""What one locust process's users and event handlers share during a run, as one typed object
on locust's Environment (as the services keep theirs on the app: services/common/state.py),
instead of a class's attributes changed as globals: the campaigns to show, discovered once at
the test's start, and the verdict, judged when locust quits and printed last.

Only locust, the standard library and the sibling modules: the stock locust image runs this.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from typing import Any

import traffic
from locust.env import Environment
from locust.runners import MasterRunner

log = logging.getLogger("quartet.loadtest")
_ATTRIBUTE = "quartet_run"


def _first_dataset() -> list[int]:
    first, last = traffic.KNOWN_DATASETS[0]
    return list(range(first, last + 1))


@dataclass
class RunState:
    # Until discovery answers: the generated dataset, the cluster's default.
    campaigns: list[int] = field(default_factory=_first_dataset)
    # The verdict's text (verdict.py), empty until the run is judged.
    verdict: str = ""


def attach(environment: Environment) -> RunState:
    """A fresh state for this environment's run (from locust's `init` event)."""
    state = RunState()
    setattr(environment, _ATTRIBUTE, state)
    return state


def of(environment: Environment) -> RunState:
    state = getattr(environment, _ATTRIBUTE, None)
    if not isinstance(state, RunState):
        # Only a user started without the locustfile's `init` handler gets here.
        raise RuntimeError("this locust environment holds no RunState: attach() has not run")
    return state


def discover(environment: Environment) -> None:
    """At the test's start: the campaigns the cluster serves (LOADTEST_CAMPAIGNS, or asked)."""
    if isinstance(environment.runner, MasterRunner):
        return  # the workers' users send the requests; each worker discovers for its own
    state = of(environment)
    started = time.perf_counter()
    try:
        state.campaigns = traffic.discover_campaigns(
            environment.host or "", os.environ.get("LOADTEST_CAMPAIGNS")
        )
    except (LookupError, ValueError) as exc:
        log.error("campaign discovery failed: %s", exc)
        request: Any = environment.events.request  # locust's EventHook is untyped
        request.fire(
            request_type="SETUP",
            name="setup: campaign discovery",
            response_time=(time.perf_counter() - started) * 1000,
            response_length=0,
            exception=exc,
            context={},
        )
        return
    log.info("campaigns %d..%d (%d)", state.campaigns[0], state.campaigns[-1], len(state.campaigns))
