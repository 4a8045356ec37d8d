"""The banner's own metrics (the HTTP RED metrics come from the service kit)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

GENERATION = Gauge(
    "banner_sets_generation",
    "Generation of the banner sets this worker serves",
    multiprocess_mode="livemin",
)
PICKS = Counter(
    "banner_picks", "Banners served, by the rule that made the campaign's set", ["rule"]
)
AVAILABLE = Gauge(
    "banner_gift_codes_available",
    "Unclaimed gift codes of a campaign, as last counted by this worker",
    ["campaign"],
    multiprocess_mode="livemostrecent",
)
CLAIMS = Counter("banner_gift_code_claims", "Gift-code claims by result", ["result"])
CLAIM_PATHS = Counter(
    "banner_gift_code_claim_paths",
    "Gift-code claims answered, by how: cache, candidate, transaction",
    ["path"],
)
