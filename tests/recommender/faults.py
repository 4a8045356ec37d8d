"""The fault helpers of the recommender's tests: the shared ones (tests/support/faults.py: a
program stalled or refused, the clock of an answer; tests/support/polling.py: the poll) under the
names these tests use."""

from __future__ import annotations

from tests.support.faults import Timed, process_tree, program_pid, timed
from tests.support.faults import programs_refused as refused
from tests.support.faults import programs_stalled as stalled
from tests.support.polling import wait_until

__all__ = ["Timed", "process_tree", "program_pid", "refused", "stalled", "timed", "wait_until"]
