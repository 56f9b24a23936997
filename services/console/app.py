"""The console's ASGI app: the JSON API under ``/api/v1`` (OpenAPI at ``/api/schema``)."""

from __future__ import annotations

from litestar import Litestar
from litestar.di import Provide
from litestar.middleware import DefineMiddleware
from litestar.openapi import OpenAPIConfig

from services.console import (
    api_alerts,
    api_health,
    api_objects,
    api_pipeline,
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
PUBLIC = ["^/api/schema", "^/login", "^/static"]


def create_app(ctx: ConsoleContext) -> Litestar:
    async def provide_ctx() -> ConsoleContext:
        return ctx

    app = Litestar(
        route_handlers=[
            api_tokens.router,
            api_alerts.router,
            api_rules.router,
            api_pipeline.router,
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
        debug=False,
    )
    app.state.tokens = TokenCache(ctx.pool)
    return app
