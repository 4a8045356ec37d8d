"""Category recommendations from a user's searches and purchases: deterministic, explainable.

Over the user's recent window (RECOMMENDER_WINDOW_DAYS, 90 by default) every event has a weight
that halves every RECOMMENDER_HALF_LIFE_DAYS (14) of age, counted in whole days:

    w(event)        = 0.5 ** (floor(age in days) / half_life)
    score(category) = sum of w over its searches + 3 * sum of w over its purchases

    search_weight   = sum of w over all searches        purchase_weight = 3 * sum over purchases
    weightage       = search_weight + purchase_weight

recommended_categories: the 3 best scores (ties by name), in that order. explore_categories: the
2 most popular categories globally (popularity computed periodically over the same window, ties by
name) that the user has not touched at all in the window. The two lists never overlap. A user with
no events gets explore categories only. Every search counts, successful or not: a search that
found nothing still says what the user wants.

Scoring reads tallies, not events: (kind, category, age in days) -> how many. MySQL produces them
(store.events_of aggregates in SQL, over at most RECOMMENDER_MAX_EVENTS of a user's most recent
events of each kind), so a miss reads a bounded number of rows whatever a user's history holds;
`recommend` tallies a list of events the same way, so both give the same answer.
"""

from __future__ import annotations

import datetime as dt
import itertools
import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

# The defaults of RECOMMENDER_WINDOW_DAYS and RECOMMENDER_HALF_LIFE_DAYS (settings.py).
WINDOW_DAYS = 90
HALF_LIFE_DAYS = 14.0
PURCHASE_FACTOR = 3
RECOMMENDED = 3
EXPLORE = 2

EventKind = Literal["search", "purchase"]


@dataclass(frozen=True)
class Event:
    kind: EventKind
    category: str
    at: dt.datetime


@dataclass(frozen=True)
class ScoringRules:
    window_days: int = WINDOW_DAYS
    half_life_days: float = HALF_LIFE_DAYS

    def weight(self, at: dt.datetime, now: dt.datetime) -> float:
        return self.weight_of_age(age_in_days(at, now))

    def weight_of_age(self, age_days: int) -> float:
        if age_days >= self.window_days:
            return 0.0
        return float(0.5 ** (max(0, age_days) / self.half_life_days))


def age_in_days(at: dt.datetime, now: dt.datetime) -> int:
    """Whole days of age, never below 0 (clock skew); the SQL in store.events_of computes the
    same from microseconds."""
    return max(0, math.floor((now - at).total_seconds() / 86_400))


@dataclass(frozen=True)
class Tally:
    """`count` events of one kind and category, all `age_days` whole days old."""

    kind: EventKind
    category: str
    age_days: int
    count: int


def tally(events: Iterable[Event], now: dt.datetime) -> list[Tally]:
    counts: dict[tuple[EventKind, str, int], int] = defaultdict(int)
    for event in events:
        counts[(event.kind, event.category, age_in_days(event.at, now))] += 1
    return [Tally(kind, category, age, n) for (kind, category, age), n in counts.items()]


def ranked(scores: Mapping[str, float]) -> list[str]:
    """Highest score first, ties by name."""
    return sorted(scores, key=lambda category: (-scores[category], category))


def recommend(
    user_id: int,
    events: Iterable[Event],
    popularity: Mapping[str, float],
    rules: ScoringRules,
    now: dt.datetime,
) -> dict[str, Any]:
    """The response body of GET /recommend/{user_id}."""
    return recommend_tallies(user_id, tally(events, now), ranked(popularity), rules)


def recommend_tallies(
    user_id: int, tallies: Sequence[Tally], popular: Sequence[str], rules: ScoringRules
) -> dict[str, Any]:
    """The response body of GET /recommend/{user_id} from the user's tallies and the global
    popularity's ranking (`ranked`, done once per refresh, not per miss). Summed in one canonical
    order, so the answer does not depend on the order the rows came in."""
    scores: dict[str, float] = defaultdict(float)
    touched: set[str] = set()
    search_weight = purchase_weight = 0.0
    searches = purchases = 0
    for t in sorted(tallies, key=lambda t: (t.kind, t.category, t.age_days)):
        weight = rules.weight_of_age(t.age_days)
        if weight == 0.0:
            continue
        touched.add(t.category)
        if t.kind == "search":
            searches += t.count
            search_weight += t.count * weight
            scores[t.category] += t.count * weight
        else:
            purchases += t.count
            purchase_weight += PURCHASE_FACTOR * t.count * weight
            scores[t.category] += PURCHASE_FACTOR * t.count * weight
    recommended = ranked(scores)[:RECOMMENDED]
    explore = list(itertools.islice((c for c in popular if c not in touched), EXPLORE))
    return {
        "user_id": user_id,
        "recommendations": {
            "weightage": round(search_weight + purchase_weight, 2),
            "search_weight": round(search_weight, 2),
            "purchase_weight": round(purchase_weight, 2),
            "recommended_categories": recommended,
            "explore_categories": explore,
        },
        "metadata": {"search_count": searches, "purchase_count": purchases},
    }


def popularity_of(counts: Iterable[tuple[str, int, int]]) -> dict[str, float]:
    """Global popularity from (category, searches, purchases) over the window, undecayed."""
    return {category: float(s + PURCHASE_FACTOR * p) for category, s, p in counts}
