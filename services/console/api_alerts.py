"""``/api/v1/alerts``: list and filter, one alert with its timeline and deliveries, and
acknowledge / resolve / suppress with a note (operator; audited as the token)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

import msgspec
from litestar import Request, Router, get, post
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.exceptions import HTTPException, NotFoundException
from litestar.params import JSONBody, PathParameter, QueryParameter

from services.archiver import lifecycle
from services.archiver.lifecycle import Alert
from services.console import alerts
from services.console.alerts import AlertDetail, AlertFilter, AlertPage
from services.console.auth import Principal, operator_guard
from services.console.context import ConsoleContext
from shared.errors import AlertActionError

AuthedRequest = Request[Principal, str, State]
StateName = Literal["active", "acknowledged", "suppressed", "resolved", "expired"]
Severity = Literal["critical", "warning", "info"]
AlertId = Annotated[int, PathParameter(ge=1, le=2**63 - 1)]
Note = Annotated[str, msgspec.Meta(max_length=2000)]


class Action(msgspec.Struct, frozen=True, kw_only=True):
    note: Note = ""


class Suppression(msgspec.Struct, frozen=True, kw_only=True):
    until: datetime
    note: Note = ""


@get("/alerts", summary="Alerts, newest first, filtered and paged")
async def list_alerts(
    request: AuthedRequest,
    ctx: NamedDependency[ConsoleContext],
    # ``state`` is a name Litestar reserves for the app state: read it under another.
    alert_state: Annotated[StateName | None, QueryParameter(name="state")] = None,
    severity: Annotated[Severity | None, QueryParameter()] = None,
    tenant: Annotated[str | None, QueryParameter()] = None,
    service: Annotated[str | None, QueryParameter()] = None,
    since: Annotated[datetime | None, QueryParameter(description="started at or after")] = None,
    until: Annotated[datetime | None, QueryParameter(description="started before")] = None,
    limit: Annotated[int, QueryParameter(ge=1, le=500)] = 50,
    offset: Annotated[int, QueryParameter(ge=0, le=1_000_000)] = 0,
) -> AlertPage:
    me = request.user
    if tenant is not None:
        me.require_tenant(tenant)
    f = AlertFilter(
        me.tenant or tenant, alert_state, severity, service, since, until, limit, offset
    )
    async with ctx.pool.connection() as conn:
        return await alerts.page(conn, f)


@get("/alerts/{alert_id:int}", summary="One alert with its timeline and deliveries")
async def get_alert(
    request: AuthedRequest, ctx: NamedDependency[ConsoleContext], alert_id: AlertId
) -> AlertDetail:
    async with ctx.pool.connection() as conn:
        found = await alerts.detail(conn, alert_id, request.user.tenant)
    if found is None:
        raise NotFoundException(f"no alert {alert_id}")
    return found


async def _act(
    request: AuthedRequest,
    ctx: ConsoleContext,
    alert_id: int,
    to: str,
    note: str,
    until: datetime | None = None,
) -> Alert:
    me = request.user
    async with ctx.pool.connection() as conn:
        if await alerts.visible(conn, alert_id, me.tenant) is None:
            raise NotFoundException(f"no alert {alert_id}")
        try:
            return await lifecycle.act(
                conn,
                alert_id,
                to,
                by=me.actor,
                note=note,
                now=datetime.now(UTC),
                until=until,
                publish=lifecycle.stream_publisher(ctx.redis, ctx.names),  # PagerDuty's ack
            )
        except AlertActionError as exc:
            raise HTTPException(status_code=409, detail=str(exc)) from exc


@post(
    "/alerts/{alert_id:int}/acknowledge",
    guards=[operator_guard],
    status_code=200,
    summary="Acknowledge an alert",
)
async def acknowledge(
    request: AuthedRequest,
    ctx: NamedDependency[ConsoleContext],
    alert_id: AlertId,
    data: JSONBody[Action],
) -> Alert:
    return await _act(request, ctx, alert_id, "acknowledged", data.note)


@post(
    "/alerts/{alert_id:int}/resolve",
    guards=[operator_guard],
    status_code=200,
    summary="Resolve an alert",
)
async def resolve(
    request: AuthedRequest,
    ctx: NamedDependency[ConsoleContext],
    alert_id: AlertId,
    data: JSONBody[Action],
) -> Alert:
    return await _act(request, ctx, alert_id, "resolved", data.note)


@post(
    "/alerts/{alert_id:int}/suppress",
    guards=[operator_guard],
    status_code=200,
    summary="Suppress an alert until a time in the future",
)
async def suppress(
    request: AuthedRequest,
    ctx: NamedDependency[ConsoleContext],
    alert_id: AlertId,
    data: JSONBody[Suppression],
) -> Alert:
    if data.until.tzinfo is None:
        raise HTTPException(status_code=400, detail="until needs a time zone (e.g. Z)")
    if data.until <= datetime.now(UTC):
        raise HTTPException(status_code=400, detail="until must be in the future")
    return await _act(request, ctx, alert_id, "suppressed", data.note, data.until)


router = Router(
    "/api/v1",
    route_handlers=[list_alerts, get_alert, acknowledge, resolve, suppress],
    tags=["alerts"],
)
