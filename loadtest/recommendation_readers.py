"""Locust profile: readers of recommendations, the recommender's traffic.

Users 1..10,000 (the demo data) read with a heavy head: an id drawn log-uniformly, so a few users
are read very often and the long tail rarely, as readers of a shop are. Now and then a reader
searches or buys, which invalidates their cached recommendation everywhere; now and then a page
asks for a batch.

    locust -f loadtest/recommendation_readers.py --headless -u 100 -r 50 -t 60s \\
        --host http://127.0.0.1:8081
"""

from __future__ import annotations

import random

from locust import FastHttpUser, between, task

USERS = 10_000
CATEGORIES = ("electronics", "books", "fashion", "home", "sports", "toys", "garden", "music")


def skewed_user() -> int:
    return int(USERS ** random.random())


class RecommendationReader(FastHttpUser):
    wait_time = between(0.05, 0.2)

    @task(20)
    def read(self) -> None:
        self.client.get(f"/recommend/{skewed_user()}", name="/recommend/{user_id}")

    @task(2)
    def batch(self) -> None:
        ids = ",".join(str(skewed_user()) for _ in range(20))
        self.client.get(f"/batch-recommend?user_ids={ids}", name="/batch-recommend (20)")

    @task(1)
    def act(self) -> None:
        event = {
            "type": random.choice(["search", "search", "purchase"]),
            "category": random.choice(CATEGORIES),
        }
        self.client.post(
            f"/users/{skewed_user()}/events", json=event, name="/users/{user_id}/events"
        )
