"""The dashboard's pages: server-rendered from the same read models as the API.

Every page shows only the caller's tenant when the token is tenant-scoped; a page of
another tenant answers 404. Forms post with a CSRF token (``csrf.py``).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import msgspec
from litestar import Request, Response, Router, get, post
from litestar.datastructures import Cookie, State
from litestar.di import NamedDependency
from litestar.exceptions import NotAuthorizedException, NotFoundException, ValidationException
from litestar.params import FromPath, FromQuery, QueryParameter, URLEncodedBody
from litestar.response import Redirect, Template
from litestar.status_codes import HTTP_401_UNAUTHORIZED

from services.archiver import lifecycle
from services.console import alerts as alert_queries
from services.console import api_health
from services.console.auth import COOKIE, Principal, TokenCache, operator_guard
from services.console.context import ConsoleContext
from services.console.dashboard import alerts_read, csrf, svg
from services.console.dashboard.alerts_read import AlertFilter
from services.console.health_read import SERIES_WINDOW
from shared.errors import AlertActionError

AuthedRequest = Request[Principal, str, State]
SESSION_S = 12 * 3600
ACTIONS = {"acknowledge": "acknowledged", "resolve": "resolved", "suppress": "suppressed"}


class LoginForm(msgspec.Struct, frozen=True):
    token: str = ""


class CsrfForm(msgspec.Struct, frozen=True):
    csrf: str = ""


class ActionForm(msgspec.Struct, frozen=True):
    csrf: str = ""
    note: str = ""
    minutes: int = 60  # how long a suppression lasts


def page(request: AuthedRequest, name: str, **context: Any) -> Template:
    """A page with what every template needs: who is logged in and the CSRF token."""
    me = request.user
    token = csrf.token_for(request.auth) if csrf.cookie_session(request) else ""
    return Template(
        template_name=name,
        context={"me": me, "csrf": token, "path": request.url.path, **context},
    )


@get("/login", summary="The login form", include_in_schema=False)
async def login_form() -> Template:
    return Template(template_name="login.html", context={"error": ""})


@post("/login", include_in_schema=False)
async def login(
    request: Request[Any, Any, State], data: URLEncodedBody[LoginForm]
) -> Response[Any]:
    cache: TokenCache = request.app.state.tokens
    token = data.token.strip()
    if not token or await cache.principal(token) is None:
        return Template(
            template_name="login.html",
            context={"error": "That token is not valid (or was revoked)."},
            status_code=HTTP_401_UNAUTHORIZED,
        )
    cookie = Cookie(
        key=COOKIE,
        value=token,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path="/",
        max_age=SESSION_S,
    )
    return Redirect("/", status_code=303, cookies=[cookie])


@post("/logout", include_in_schema=False)
async def logout(request: AuthedRequest, data: URLEncodedBody[CsrfForm]) -> Redirect:
    csrf.verify(request, data.csrf)
    response = Redirect("/login", status_code=303)
    response.delete_cookie(COOKIE, path="/")
    return response


@get("/", include_in_schema=False)
async def overview(request: AuthedRequest, ctx: NamedDependency[ConsoleContext]) -> Template:
    scope = request.user.tenant
    view = await api_health.overview(ctx, scope)
    async with ctx.pool.connection() as conn:
        active = await alerts_read.listing(conn, scope, AlertFilter(), open_only=True)
    return page(request, "overview.html", view=view, alerts=active[:20])


@get("/matrix", include_in_schema=False)
async def matrix(request: AuthedRequest, ctx: NamedDependency[ConsoleContext]) -> Template:
    found = await api_health.matrix_of(ctx, request.user.tenant)
    return page(request, "matrix.html", matrix=found, cells=found.by_pair())


@get("/tenants/{tenant:str}", include_in_schema=False)
async def tenant(
    request: AuthedRequest, ctx: NamedDependency[ConsoleContext], tenant: FromPath[str]
) -> Template:
    view = await api_health.tenant_view(ctx, request.user, tenant)
    return page(request, "tenant.html", view=view)


@get("/services/{tenant:str}/{service:str}", include_in_schema=False)
async def service(
    request: AuthedRequest,
    ctx: NamedDependency[ConsoleContext],
    tenant: FromPath[str],
    service: FromPath[str],
) -> Template:
    detail = await api_health.service_detail(ctx, request.user, tenant, service)
    now = datetime.now(UTC)
    chart = svg.latency_chart(detail.latency, now - SERIES_WINDOW, now)
    return page(request, "service.html", detail=detail, chart=chart)


@get("/alerts", include_in_schema=False)
async def alerts(
    request: AuthedRequest,
    ctx: NamedDependency[ConsoleContext],
    alert_state: Annotated[str | None, QueryParameter(name="state")] = None,
    severity: FromQuery[str | None] = None,
    tenant: FromQuery[str | None] = None,
    service: FromQuery[str | None] = None,
) -> Template:
    wanted = AlertFilter(
        state=alert_state or None,
        severity=severity or None,
        tenant=tenant or None,
        service=service or None,
    )
    scope = request.user.tenant
    async with ctx.pool.connection() as conn:
        active = await alerts_read.listing(conn, scope, wanted, open_only=True)
        history = await alerts_read.listing(conn, scope, wanted, open_only=False)
    return page(request, "alerts.html", active=active, history=history, wanted=wanted)


@get("/alerts/{alert_id:int}", include_in_schema=False)
async def alert(
    request: AuthedRequest, ctx: NamedDependency[ConsoleContext], alert_id: FromPath[int]
) -> Template:
    async with ctx.pool.connection() as conn:
        found = await alert_queries.detail(conn, alert_id, request.user.tenant)
    if found is None:
        raise NotFoundException(f"no alert {alert_id}")
    return page(request, "alert.html", detail=found)


@post("/alerts/{alert_id:int}/{action:str}", guards=[operator_guard], include_in_schema=False)
async def alert_action(
    request: AuthedRequest,
    ctx: NamedDependency[ConsoleContext],
    alert_id: FromPath[int],
    action: FromPath[str],
    data: URLEncodedBody[ActionForm],
) -> Redirect:
    csrf.verify(request, data.csrf)
    if action not in ACTIONS:
        raise NotFoundException(f"no action {action!r}")
    now = datetime.now(UTC)
    until = now + timedelta(minutes=data.minutes) if action == "suppress" else None
    async with ctx.pool.connection() as conn:
        try:
            alert = await lifecycle.get(conn, alert_id)
            request.user.require_tenant(alert.tenant)
            await lifecycle.act(
                conn,
                alert_id,
                ACTIONS[action],
                by=request.user.actor,
                note=data.note,
                now=now,
                until=until,
                publish=lifecycle.stream_publisher(ctx.redis, ctx.names),  # PagerDuty's ack
            )
        except AlertActionError as exc:
            if "no alert" in str(exc):
                raise NotFoundException(str(exc)) from exc
            raise ValidationException(str(exc)) from exc
    return Redirect(f"/alerts/{alert_id}", status_code=303)


def to_login(request: Request[Any, Any, State], exc: NotAuthorizedException) -> Response[Any]:
    """A browser without a valid session goes to the login form."""
    return Redirect("/login", status_code=303)


router = Router(
    "/",
    route_handlers=[
        login_form,
        login,
        logout,
        overview,
        matrix,
        tenant,
        service,
        alerts,
        alert,
        alert_action,
    ],
    exception_handlers={NotAuthorizedException: to_login},
    tags=["dashboard"],
)
