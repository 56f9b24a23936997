"""Health read models: overall status, per service, the service x tenant matrix, a tenant.

The latest result of every configured check comes from the probe's per-tier cache in
Redis (``services/probe/cache.py``), one MGET for all of them: a refresh never runs a
check. A key that expired means no worker ran the check within its tier's TTL: the
check is "stale", which counts as degraded. The pure functions here turn those
results into views; ``snapshot`` and the ``headline``/``detail`` queries are the adapters.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Literal

import msgspec

from schemas import CheckResult
from services.probe.cache import latest_key_name
from services.probe.monitors.base import CheckConfig

CheckStatus = Literal["healthy", "degraded", "unhealthy", "unknown", "stale"]
Overall = Literal["healthy", "degraded", "critical"]
# Worse is larger: a group shows its worst member.
RANK: dict[str, int] = {"healthy": 0, "degraded": 1, "unknown": 2, "stale": 2, "unhealthy": 3}
NAMED_IN_REASON = 3


class CheckHealth(msgspec.Struct, frozen=True, kw_only=True):
    tenant: str
    service: str
    check: str
    tier: str
    kind: str
    status: CheckStatus
    latency_ms: float | None = None
    observed_at: datetime | None = None


class ServiceHealth(msgspec.Struct, frozen=True, kw_only=True):
    """One service: across the visible tenants (``tenant`` None) or within one."""

    service: str
    tenant: str | None
    status: CheckStatus
    checks: int
    failing: int  # not healthy
    latency_ms: float | None  # the slowest latest result
    last_check: datetime | None


class Verdict(msgspec.Struct, frozen=True, kw_only=True):
    status: Overall
    reason: str
    counts: dict[str, int]


class Cell(msgspec.Struct, frozen=True, kw_only=True):
    tenant: str
    service: str
    status: CheckStatus
    checks: int
    failing: int


class Matrix(msgspec.Struct, frozen=True, kw_only=True):
    tenants: list[str]
    services: list[str]
    cells: list[Cell]  # only the (tenant, service) pairs that have checks

    def by_pair(self) -> dict[tuple[str, str], Cell]:
        return {(c.tenant, c.service): c for c in self.cells}


def check_health(check: CheckConfig, cached: bytes | str | None) -> CheckHealth:
    """One check's health from its cached latest result (None: the key expired)."""
    status: CheckStatus = "stale"
    result: CheckResult | None = None
    if cached is not None:
        try:
            result = msgspec.json.decode(cached, type=CheckResult)
            status = result.status
        except msgspec.ValidationError:
            status = "unknown"
    return CheckHealth(
        tenant=check.tenant,
        service=check.service,
        check=check.name,
        tier=check.tier,
        kind=check.kind,
        status=status,
        latency_ms=result.latency_ms if result else None,
        observed_at=result.observed_at if result else None,
    )


def worst(statuses: Iterable[str]) -> CheckStatus:
    found: CheckStatus = "healthy"
    for s in statuses:
        if RANK[s] > RANK[found]:
            found = s  # type: ignore[assignment]
    return found


def verdict(checks: Sequence[CheckHealth]) -> Verdict:
    """critical when any check is unhealthy; degraded when any is degraded, unknown or
    stale; healthy otherwise. The reason counts and names the worst ones."""
    counts: dict[str, int] = defaultdict(int)
    for c in checks:
        counts[c.status] += 1
    if not checks:
        return Verdict(status="healthy", reason="no checks configured", counts={})
    status = worst(c.status for c in checks)
    if status == "healthy":
        return Verdict(
            status="healthy", reason=f"all {len(checks)} checks healthy", counts=dict(counts)
        )
    bad = sorted((c for c in checks if c.status == status), key=lambda c: (c.tenant, c.check))
    named = ", ".join(f"{c.tenant}/{c.check} ({c.service})" for c in bad[:NAMED_IN_REASON])
    more = f" and {len(bad) - NAMED_IN_REASON} more" if len(bad) > NAMED_IN_REASON else ""
    overall: Overall = "critical" if status == "unhealthy" else "degraded"
    reason = f"{len(bad)} of {len(checks)} checks {status}: {named}{more}"
    return Verdict(status=overall, reason=reason, counts=dict(counts))


def _service(name: str, tenant: str | None, checks: list[CheckHealth]) -> ServiceHealth:
    latencies = [c.latency_ms for c in checks if c.latency_ms is not None]
    seen = [c.observed_at for c in checks if c.observed_at is not None]
    return ServiceHealth(
        service=name,
        tenant=tenant,
        status=worst(c.status for c in checks),
        checks=len(checks),
        failing=sum(c.status != "healthy" for c in checks),
        latency_ms=max(latencies) if latencies else None,
        last_check=max(seen) if seen else None,
    )


def services(checks: Iterable[CheckHealth], *, per_tenant: bool = False) -> list[ServiceHealth]:
    """Services worst first, then by name; across tenants unless ``per_tenant``."""
    groups: dict[tuple[str, str | None], list[CheckHealth]] = defaultdict(list)
    for c in checks:
        groups[(c.service, c.tenant if per_tenant else None)].append(c)
    out = [_service(name, tenant, group) for (name, tenant), group in groups.items()]
    return sorted(out, key=lambda s: (-RANK[s.status], s.service, s.tenant or ""))


def matrix(checks: Iterable[CheckHealth], tenants: Iterable[str]) -> Matrix:
    groups: dict[tuple[str, str], list[CheckHealth]] = defaultdict(list)
    for c in checks:
        groups[(c.tenant, c.service)].append(c)
    cells = [
        Cell(
            tenant=t,
            service=s,
            status=worst(c.status for c in group),
            checks=len(group),
            failing=sum(c.status != "healthy" for c in group),
        )
        for (t, s), group in sorted(groups.items())
    ]
    names = sorted(set(tenants) | {c.tenant for c in cells})
    return Matrix(tenants=names, services=sorted({c.service for c in cells}), cells=cells)


def cache_keys(checks: Sequence[CheckConfig]) -> list[str]:
    """Each check's cache key name, in order (to be put under the stream prefix)."""
    return [latest_key_name(c.tenant, c.name) for c in checks]
