"""``/api/v1/health``: overall status, the service x tenant matrix, a tenant, a service.

Read from the probe's cache and the archive's rollups; a tenant-scoped token sees only
its tenant, and anything else answers 404.
"""

from __future__ import annotations

from datetime import UTC, datetime

import msgspec
from litestar import Request, Router, get
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.exceptions import NotFoundException
from litestar.params import FromPath

from services.console import health, health_read
from services.console.auth import Principal
from services.console.context import ConsoleContext
from services.console.health import Matrix, ServiceHealth, Verdict
from services.console.health_read import Headline, ServiceDetail

AuthedRequest = Request[Principal, str, State]


class Overview(msgspec.Struct, frozen=True, kw_only=True):
    status: health.Overall
    reason: str
    counts: dict[str, int]
    services: list[ServiceHealth]  # per service name, across the visible tenants
    headline: Headline


class TenantView(msgspec.Struct, frozen=True, kw_only=True):
    tenant: str
    status: health.Overall
    reason: str
    counts: dict[str, int]
    services: list[ServiceHealth]
    checks: list[health.CheckHealth]


async def overview(ctx: ConsoleContext, tenant: str | None) -> Overview:
    checks = await health_read.snapshot(ctx, health_read.visible_checks(ctx, tenant))
    found: Verdict = health.verdict(checks)
    return Overview(
        status=found.status,
        reason=found.reason,
        counts=found.counts,
        services=health.services(checks),
        headline=await health_read.headline(ctx, tenant, datetime.now(UTC)),
    )


async def matrix_of(ctx: ConsoleContext, tenant: str | None) -> Matrix:
    checks = await health_read.snapshot(ctx, health_read.visible_checks(ctx, tenant))
    return health.matrix(checks, health_read.visible_tenants(ctx, tenant))


async def tenant_view(ctx: ConsoleContext, me: Principal, tenant: str) -> TenantView:
    me.require_tenant(tenant)
    known = {t.id for t in ctx.config.tenants} | {c.tenant for c in ctx.config.checks}
    if tenant not in known:
        raise NotFoundException(f"no such tenant: {tenant}")
    checks = await health_read.snapshot(ctx, health_read.visible_checks(ctx, tenant))
    found = health.verdict(checks)
    return TenantView(
        tenant=tenant,
        status=found.status,
        reason=found.reason,
        counts=found.counts,
        services=health.services(checks, per_tenant=True),
        checks=checks,
    )


async def service_detail(
    ctx: ConsoleContext, me: Principal, tenant: str, service: str
) -> ServiceDetail:
    me.require_tenant(tenant)
    found = await health_read.detail(ctx, tenant, service)
    if found is None:
        raise NotFoundException(f"no checks for service {service!r} of tenant {tenant!r}")
    return found


@get("/health", summary="Overall status with the reason, per service, headline metrics")
async def get_overview(request: AuthedRequest, ctx: NamedDependency[ConsoleContext]) -> Overview:
    return await overview(ctx, request.user.tenant)


@get("/health/matrix", summary="The service x tenant matrix of worst check status")
async def get_matrix(request: AuthedRequest, ctx: NamedDependency[ConsoleContext]) -> Matrix:
    return await matrix_of(ctx, request.user.tenant)


@get("/health/tenants/{tenant:str}", summary="One tenant: its services and checks")
async def get_tenant(
    request: AuthedRequest, ctx: NamedDependency[ConsoleContext], tenant: FromPath[str]
) -> TenantView:
    return await tenant_view(ctx, request.user, tenant)


@get(
    "/health/services/{tenant:str}/{service:str}",
    summary="One service: checks, uptime 24h/7d/30d, hourly latency, recent results",
)
async def get_service(
    request: AuthedRequest,
    ctx: NamedDependency[ConsoleContext],
    tenant: FromPath[str],
    service: FromPath[str],
) -> ServiceDetail:
    return await service_detail(ctx, request.user, tenant, service)


router = Router(
    "/api/v1", route_handlers=[get_overview, get_matrix, get_tenant, get_service], tags=["health"]
)
