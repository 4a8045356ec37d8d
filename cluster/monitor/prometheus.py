"""Prometheus's HTTP API, the two calls the monitor needs: an instant query at a given time, and
the names its recording rules record.

Alerts too are read as series (`ALERTS`, snapshot.py), not from /api/v1/alerts, which only knows
the present: so a frame, `--at` in the past included, is one instant throughout.

PrometheusError     anything that keeps a frame from being drawn; str() is the one line to show
  Unreachable       no HTTP answer at all (refused, timed out, bad URL): the server is down
  BadAnswer         an answer that is not a successful Prometheus one (a 4xx/5xx, not JSON,
                    a query error, another server on that port)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import httpx

# Below the monitor's refresh interval, so a stalled server shows as not answering within one
# refresh instead of freezing the frame.
TIMEOUT_S = 1.5


class PrometheusError(Exception):
    """A frame could not be drawn; the message names the server and says why, in one line."""


class Unreachable(PrometheusError):
    pass


class BadAnswer(PrometheusError):
    pass


@dataclass(frozen=True)
class Sample:
    labels: dict[str, str]
    value: float | None  # None for NaN: a quantile or ratio of no requests has no number

    def label(self, name: str) -> str:
        return self.labels.get(name, "")


def parse_vector(url: str, query: str, body: Any) -> list[Sample]:
    """The samples of an instant query's answer (`resultType` vector, or a scalar)."""
    if not isinstance(body, dict) or body.get("status") != "success":
        error = body.get("error", body) if isinstance(body, dict) else body
        raise BadAnswer(f"Prometheus at {url} refused the query {query!r}: {error}")
    data = body["data"]
    if data["resultType"] == "scalar":
        return [Sample({}, _number(data["result"][1]))]
    if data["resultType"] != "vector":
        raise BadAnswer(f"Prometheus at {url} answered a {data['resultType']} to {query!r}")
    return [Sample(dict(item["metric"]), _number(item["value"][1])) for item in data["result"]]


def _number(text: str) -> float | None:
    value = float(text)
    return None if math.isnan(value) else value


class Prometheus:
    """A client of one server; `at` pins every query of a frame to the same instant."""

    def __init__(
        self, url: str, timeout_s: float = TIMEOUT_S, transport: httpx.BaseTransport | None = None
    ) -> None:
        self.url = url.rstrip("/")
        # `transport`: a test's stand-in server (httpx.MockTransport).
        self._client = httpx.Client(base_url=self.url, timeout=timeout_s, transport=transport)

    def close(self) -> None:
        self._client.close()

    def query(self, query: str, at: float) -> list[Sample]:
        body = self._get("/api/v1/query", {"query": query, "time": f"{at:.3f}"})
        return parse_vector(self.url, query, body)

    def recorded(self) -> frozenset[str]:
        """The series this server's recording rules write (its rules, not the repository's)."""
        body = self._get("/api/v1/rules", {"type": "record"})
        if not isinstance(body, dict) or body.get("status") != "success":
            raise BadAnswer(f"Prometheus at {self.url} did not list its rules: {body}")
        return frozenset(
            rule["name"]
            for group in body["data"]["groups"]
            for rule in group["rules"]
            if rule.get("type") == "recording"
        )

    def _get(self, path: str, params: dict[str, str]) -> Any:
        try:
            answer = self._client.get(path, params=params)
        except httpx.TransportError as exc:
            reason = str(exc) or type(exc).__name__
            raise Unreachable(f"Prometheus at {self.url} is not answering: {reason}") from exc
        try:
            body = answer.json()
        except ValueError:
            raise BadAnswer(
                f"Prometheus at {self.url} answered {answer.status_code} to {path}, not JSON: "
                "is it Prometheus?"
            ) from None
        if answer.status_code != 200 and not isinstance(body, dict):
            raise BadAnswer(f"Prometheus at {self.url} answered {answer.status_code} to {path}")
        return body
