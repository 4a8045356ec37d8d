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
"""

from __future__ import annotations

import datetime as dt
import math
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

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
    window_days: int = 90
    half_life_days: float = 14.0

    def weight(self, at: dt.datetime, now: dt.datetime) -> float:
        age_days = max(0, math.floor((now - at).total_seconds() / 86_400))
        if age_days >= self.window_days:
            return 0.0
        return float(0.5 ** (age_days / self.half_life_days))


def _ranked(scores: Mapping[str, float]) -> list[str]:
    return sorted(scores, key=lambda category: (-scores[category], category))


def recommend(
    user_id: int,
    events: Iterable[Event],
    popularity: Mapping[str, float],
    rules: ScoringRules,
    now: dt.datetime,
) -> dict[str, Any]:
    """The response body of GET /recommend/{user_id}."""
    scores: dict[str, float] = defaultdict(float)
    touched: set[str] = set()
    search_weight = purchase_weight = 0.0
    searches = purchases = 0
    for event in events:
        weight = rules.weight(event.at, now)
        if weight == 0.0:
            continue
        touched.add(event.category)
        if event.kind == "search":
            searches += 1
            search_weight += weight
            scores[event.category] += weight
        else:
            purchases += 1
            purchase_weight += PURCHASE_FACTOR * weight
            scores[event.category] += PURCHASE_FACTOR * weight
    recommended = _ranked(scores)[:RECOMMENDED]
    explore = [c for c in _ranked(popularity) if c not in touched][:EXPLORE]
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
