"""The latest result of every check, per tier TTL, for the health API to read.

Written in the same pipeline as the result's XADD, so the cache never shows a
result the stream does not have. A key that expired means no worker has run
the check for a while: the health API can show "stale" instead of trusting it.
"""

from __future__ import annotations

TIER_TTL_S = {"critical": 30, "core": 120, "integration": 300, "external": 600}


def latest_key_name(tenant: str, check: str) -> str:
    """The key's name under the stream prefix (``StreamNames.key``)."""
    return f"probe:latest:{tenant}/{check}"


def ttl_for(tier: str, interval_s: float) -> int:
    """The tier's TTL; a tier of one's own keeps its result for two intervals."""
    return TIER_TTL_S.get(tier, max(30, int(2 * interval_s)))
