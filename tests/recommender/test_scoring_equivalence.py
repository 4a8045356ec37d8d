"""The miss path scores tallies (kind, category, whole days of age) -> count, aggregated by MySQL;
the service's first version scored each event row by itself. Here both are computed on generated
events and must give the same public answer. The per-event formula below is that first
version's, written out again so the test does not share code with what it checks."""

from __future__ import annotations

import datetime as dt
import itertools
import math
from collections import defaultdict
from typing import Any

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from services.recommender.scoring import (
    PURCHASE_FACTOR,
    Event,
    ScoringRules,
    recommend,
    recommend_tallies,
    tally,
)

NOW = dt.datetime(2026, 11, 22, 12, 0, 0, 123_456, tzinfo=dt.UTC)
DAY_US = 86_400_000_000
# Names that differ only in case or a trailing space are different categories.
CATEGORIES = ["books", "Books", "books ", "garden", "music", "zeta", "alpha"]
POPULAR = {"electronics": 100.0, "books": 90.0, "fashion": 80.0, "garden": 70.0, "alpha": 70.0}
# Two scores closer than this (and not equal) are a near tie the two ways of summing may order
# differently by one rounding step; such inputs are left out.
NEAR = 1e-9


def _per_event(
    events: list[Event], rules: ScoringRules, now: dt.datetime
) -> tuple[dict[str, float], float, float, int, int, set[str]]:
    """The first version's formula, event by event, summed exactly (math.fsum)."""
    terms: dict[str, list[float]] = defaultdict(list)
    searched: list[float] = []
    bought: list[float] = []
    touched: set[str] = set()
    for event in events:
        age = max(0, math.floor((now - event.at).total_seconds() / 86_400))
        if age >= rules.window_days:
            continue
        weight = 0.5 ** (age / rules.half_life_days)
        touched.add(event.category)
        factor = 1 if event.kind == "search" else PURCHASE_FACTOR
        (searched if event.kind == "search" else bought).append(factor * weight)
        terms[event.category].append(factor * weight)
    scores = {category: math.fsum(ws) for category, ws in terms.items()}
    return scores, math.fsum(searched), math.fsum(bought), len(searched), len(bought), touched


def _rounds_to(got: float, exact: float) -> bool:
    """`got` is `exact` rounded to 2 decimals (either way when exact is at a rounding edge)."""
    if got == round(exact, 2):
        return True
    return abs(abs(exact * 100 - math.floor(exact * 100)) - 0.5) < 1e-6 and abs(got - exact) < 0.01


events_strategy = st.lists(
    st.builds(
        lambda kind, category, days, edge: Event(
            kind, category, NOW - dt.timedelta(days=days, microseconds=edge)
        ),
        st.sampled_from(["search", "purchase"]),
        st.sampled_from(CATEGORIES),
        st.integers(min_value=-1, max_value=95),
        # Right at a whole day of age, a microsecond either side, or anywhere in the day.
        st.one_of(st.sampled_from([0, 1, -1, DAY_US - 1]), st.integers(0, DAY_US - 1)),
    ),
    max_size=60,
)


@settings(max_examples=300, deadline=None)
@given(events=events_strategy, half_life=st.sampled_from([14.0, 7.0, 1.0, 3.5]))
def test_tallies_give_the_per_event_answer(events: list[Event], half_life: float) -> None:
    rules = ScoringRules(window_days=90, half_life_days=half_life)
    body: dict[str, Any] = recommend(3, events, POPULAR, rules, NOW)
    scores, searched, bought, searches, purchases, touched = _per_event(events, rules, NOW)
    values = sorted(scores.values())
    assume(all(b - a == 0 or b - a > NEAR for a, b in itertools.pairwise(values)))

    recs = body["recommendations"]
    assert body["metadata"] == {"search_count": searches, "purchase_count": purchases}
    assert _rounds_to(recs["search_weight"], searched)
    assert _rounds_to(recs["purchase_weight"], bought)
    assert _rounds_to(recs["weightage"], searched + bought)
    assert recs["recommended_categories"] == sorted(scores, key=lambda c: (-scores[c], c))[:3]
    popular = sorted(POPULAR, key=lambda c: (-POPULAR[c], c))
    assert recs["explore_categories"] == [c for c in popular if c not in touched][:2]


@given(events=events_strategy, split=st.integers(min_value=0, max_value=60))
def test_the_answer_does_not_depend_on_how_the_rows_are_cut_or_ordered(
    events: list[Event], split: int
) -> None:
    """MySQL may send a user's tallies in any order (and a batch's rows interleaved): the
    answer is the same."""
    rules = ScoringRules()
    popular = sorted(POPULAR, key=lambda c: (-POPULAR[c], c))
    tallies = tally(events, NOW)
    reordered = tallies[split:] + tallies[:split]
    assert recommend_tallies(9, reordered, popular, rules) == recommend_tallies(
        9, list(reversed(tallies)), popular, rules
    )
