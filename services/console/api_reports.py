"""History answers over the archiver's queries: uptime, SLA / error budget, latency
series and alert patterns. A tenant's token is held to its tenant (another: 404)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Literal

import msgspec
from litestar import Request, Router, get
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.params import QueryParameter

from services.archiver import queries
from services.archiver.patterns import sla
from services.archiver.queries import LatencyPoint
from services.console.auth import Principal
from services.console.context import ConsoleContext

AuthedRequest = Request[Principal, str, State]
Window = Literal["24h", "7d", "30d"]
Tenant = Annotated[str | None, QueryParameter()]
Service = Annotated[str | None, QueryParameter()]


class UptimeRow(msgspec.Struct, frozen=True, kw_only=True):
    tenant: str
    service: str | None
    check: str | None
    executions: int
    successes: int
    failures: int
    percent: float | None


class Recurring(msgspec.Struct, frozen=True, kw_only=True):
    fingerprint: str
    count: int


class PatternsOut(msgspec.Struct, frozen=True, kw_only=True):
    total: int
    most_common_rule: str | None
    by_rule: dict[str, int]
    by_hour: list[int]  # alerts started in each UTC hour of the day, 0..23
    peak_hour: int | None
    mtta_s: float | None
    mttr_s: float | None
    recurring: list[Recurring]  # alerts (fingerprints) that started more than once


class SlaRow(msgspec.Struct, frozen=True, kw_only=True):
    tenant: str
    service: str | None
    target_percent: float
    uptime_percent: float | None
    met: bool
    allowed_failures: float
    failures: int
    budget_remaining_percent: float | None


def scope(me: Principal, tenant: str | None) -> str | None:
    """The tenant to filter on: the token's own, or the one asked for (if visible)."""
    if tenant is not None:
        me.require_tenant(tenant)
    return me.tenant or tenant


async def _uptime(
    ctx: ConsoleContext, level: str, window: str, tenant: str | None, service: str | None
) -> list[queries.Uptime]:
    async with ctx.pool.connection() as conn:
        return await queries.uptime(
            conn,
            level,  # type: ignore[arg-type]
            queries.WINDOWS[window],
            datetime.now(UTC),
            tenant=tenant,
            service=service,
        )


@get("/uptime", summary="Uptime per check, service or tenant over 24h, 7d or 30d")
async def uptime(
    request: AuthedRequest,
    ctx: NamedDependency[ConsoleContext],
    level: Annotated[Literal["check", "service", "tenant"], QueryParameter()] = "service",
    window: Annotated[Window, QueryParameter()] = "24h",
    tenant: Tenant = None,
    service: Service = None,
) -> list[UptimeRow]:
    rows = await _uptime(ctx, level, window, scope(request.user, tenant), service)
    return msgspec.convert(rows, list[UptimeRow], from_attributes=True)


@get("/sla", summary="Uptime against a target per service, with the error budget left")
async def service_sla(
    request: AuthedRequest,
    ctx: NamedDependency[ConsoleContext],
    target: Annotated[float, QueryParameter(ge=0, le=100)] = 99.9,
    window: Annotated[Window, QueryParameter()] = "30d",
    tenant: Tenant = None,
    service: Service = None,
) -> list[SlaRow]:
    rows = await _uptime(ctx, "service", window, scope(request.user, tenant), service)
    out = []
    for u in rows:
        s = sla(u.successes, u.failures, target)
        out.append(
            SlaRow(
                tenant=u.tenant,
                service=u.service,
                target_percent=s.target_percent,
                uptime_percent=s.uptime_percent,
                met=s.met,
                allowed_failures=s.allowed_failures,
                failures=s.failures,
                budget_remaining_percent=s.budget_remaining_percent,
            )
        )
    return out


@get("/latency", summary="Latency percentiles of one check per step of whole hours")
async def latency(
    request: AuthedRequest,
    ctx: NamedDependency[ConsoleContext],
    tenant: Annotated[str, QueryParameter()],
    service: Annotated[str, QueryParameter()],
    check: Annotated[str, QueryParameter()],
    hours: Annotated[int, QueryParameter(ge=1, le=24 * 31)] = 24,
    step_hours: Annotated[int, QueryParameter(ge=1, le=24)] = 1,
) -> list[LatencyPoint]:
    request.user.require_tenant(tenant)
    until = datetime.now(UTC)
    async with ctx.pool.connection() as conn:
        return await queries.latency(
            conn,
            tenant,
            service,
            check,
            until - timedelta(hours=hours),
            until,
            timedelta(hours=step_hours),
        )


@get("/patterns", summary="Alert patterns: by rule and hour, MTTA, MTTR, recurring alerts")
async def patterns(
    request: AuthedRequest,
    ctx: NamedDependency[ConsoleContext],
    hours: Annotated[int, QueryParameter(ge=1, le=24 * 366)] = 24 * 7,
    tenant: Tenant = None,
) -> PatternsOut:
    until = datetime.now(UTC)
    async with ctx.pool.connection() as conn:
        p = await queries.patterns(
            conn, until - timedelta(hours=hours), until, tenant=scope(request.user, tenant)
        )
    return PatternsOut(
        total=p.total,
        most_common_rule=p.most_common_rule,
        by_rule=p.by_rule,
        by_hour=p.by_hour,
        peak_hour=p.peak_hour,
        mtta_s=p.mtta_s,
        mttr_s=p.mttr_s,
        recurring=[Recurring(fingerprint=f, count=n) for f, n in p.recurring],
    )


router = Router(
    "/api/v1", route_handlers=[uptime, service_sla, latency, patterns], tags=["history"]
)
