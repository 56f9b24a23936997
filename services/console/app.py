"""The console's ASGI app: the JSON API under ``/api/v1`` (OpenAPI at ``/api/schema``)."""

from __future__ import annotations

import logging
from typing import Any

import psycopg
from litestar import Litestar, Request, Response
from litestar.di import Provide
from litestar.exceptions import HTTPException
from litestar.middleware import DefineMiddleware
from litestar.openapi import OpenAPIConfig
from litestar.types import Scope

from services.console import (
    api_alerts,
    api_channels,
    api_health,
    api_objects,
    api_pipeline,
    api_reports,
    api_rules,
    api_tokens,
    dashboard,
)
from services.console.auth import (
    TokenAuthentication,
    TokenCache,
    admin_guard,
    operator_guard,
)
from services.console.context import ConsoleContext
from services.console.dashboard.csrf import CSRFHeaderMiddleware

# Reachable without a token: the API description and the dashboard's login page.
log = logging.getLogger(__name__)
MAX_BODY = 1_000_000  # bytes; a larger request body is refused with 413
PUBLIC = ["^/api/schema", "^/login", "^/static"]


async def log_unexpected(exc: Exception, scope: Scope) -> None:
    """A 500 is logged with its traceback; a refused request is the caller's business."""
    if not isinstance(exc, HTTPException | psycopg.DataError):
        log.error("%s %s failed", scope.get("method", ""), scope.get("path", ""), exc_info=exc)


def refuse_bad_value(request: Request[Any, Any, Any], exc: psycopg.DataError) -> Response[Any]:
    """A value PostgreSQL cannot hold (a NUL byte in a name, say) is the caller's error."""
    return Response({"status_code": 400, "detail": f"invalid value: {exc}"}, status_code=400)


def create_app(ctx: ConsoleContext) -> Litestar:
    async def provide_ctx() -> ConsoleContext:
        return ctx

    app = Litestar(
        route_handlers=[
            api_tokens.router,
            api_alerts.router,
            api_rules.router,
            api_pipeline.router,
            api_channels.router,
            api_reports.router,
            api_objects.crud("rule", "rules", operator_guard),
            api_objects.crud("silence", "silences", operator_guard),
            api_objects.crud("maintenance", "maintenance", operator_guard),
            api_objects.crud("channel", "channels", admin_guard),
            api_objects.crud("route", "routes", admin_guard),
            api_health.router,
            *dashboard.route_handlers,
        ],
        dependencies={"ctx": Provide(provide_ctx)},
        middleware=[DefineMiddleware(TokenAuthentication, exclude=PUBLIC), CSRFHeaderMiddleware()],
        template_config=dashboard.template_config,
        openapi_config=OpenAPIConfig(title="Vigil operations API", version="1", path="/api/schema"),
        after_exception=[log_unexpected],
        exception_handlers={psycopg.DataError: refuse_bad_value},
        request_max_body_size=MAX_BODY,
        debug=False,
    )
    app.state.tokens = TokenCache(ctx.pool)
    return app
