"""The scoring formula against values worked out by hand."""

from __future__ import annotations

import datetime as dt

import pytest

from services.recommender.scoring import Event, ScoringRules, recommend

NOW = dt.datetime(2026, 11, 22, 12, 0, tzinfo=dt.UTC)
RULES = ScoringRules(window_days=90, half_life_days=14)
POPULAR = {"electronics": 100.0, "books": 90.0, "fashion": 80.0, "garden": 70.0, "music": 5.0}


def ago(days: int, hours: int = 1) -> dt.datetime:
    return NOW - dt.timedelta(days=days, hours=hours)


def test_weights_halve_every_half_life_in_whole_days_and_stop_at_the_window() -> None:
    assert RULES.weight(ago(0), NOW) == 1.0
    assert RULES.weight(ago(13, hours=23), NOW) == pytest.approx(0.5 ** (13 / 14))
    assert RULES.weight(ago(14), NOW) == 0.5
    assert RULES.weight(ago(28), NOW) == 0.25
    assert RULES.weight(ago(89), NOW) > 0
    assert RULES.weight(ago(90), NOW) == 0.0
    assert RULES.weight(NOW + dt.timedelta(hours=1), NOW) == 1.0  # clock skew: not above 1


def test_a_hand_worked_user() -> None:
    events = [
        Event("search", "books", ago(0)),  # 1
        Event("search", "books", ago(14)),  # 0.5
        Event("search", "music", ago(28)),  # 0.25
        Event("purchase", "garden", ago(0)),  # 3 x 1
        Event("purchase", "books", ago(120)),  # outside the window: ignored
    ]
    body = recommend(7, events, POPULAR, RULES, NOW)
    assert body == {
        "user_id": 7,
        "recommendations": {
            "weightage": 4.75,
            "search_weight": 1.75,
            "purchase_weight": 3.0,
            # garden 3, books 1.5, music 0.25
            "recommended_categories": ["garden", "books", "music"],
            # the most popular categories the user has not touched
            "explore_categories": ["electronics", "fashion"],
        },
        "metadata": {"search_count": 3, "purchase_count": 1},
    }


def test_ties_are_broken_by_name_and_only_three_are_recommended() -> None:
    events = [Event("search", c, ago(3)) for c in ("zeta", "alpha", "mid", "beta")]
    body = recommend(1, events, POPULAR, RULES, NOW)
    assert body["recommendations"]["recommended_categories"] == ["alpha", "beta", "mid"]


def test_explore_never_overlaps_anything_touched() -> None:
    events = [Event("search", "electronics", ago(80)), Event("purchase", "books", ago(1))]
    recs = recommend(1, events, POPULAR, RULES, NOW)["recommendations"]
    assert recs["explore_categories"] == ["fashion", "garden"]
    assert not set(recs["explore_categories"]) & set(recs["recommended_categories"])


def test_a_new_user_gets_explore_categories_only() -> None:
    body = recommend(5, [], POPULAR, RULES, NOW)
    assert body["recommendations"]["recommended_categories"] == []
    assert body["recommendations"]["explore_categories"] == ["electronics", "books"]
    assert body["metadata"] == {"search_count": 0, "purchase_count": 0}


def test_the_same_input_gives_the_same_answer_in_any_order() -> None:
    events = [Event("search", c, ago(i)) for i, c in enumerate("abcdefabc")]
    assert recommend(1, events, POPULAR, RULES, NOW) == recommend(
        1, list(reversed(events)), POPULAR, RULES, NOW
    )
