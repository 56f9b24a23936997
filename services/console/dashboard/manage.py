"""Rules, channels, silences and maintenance pages.

The pages list what the API lists (``objects.visible``: stored objects and the file's);
their buttons and forms call the JSON API from the page's script with the CSRF header,
so a change goes through exactly the validation, audit and hot reload of the API.
"""

from __future__ import annotations

import json
from typing import Any

from litestar import Router, get
from litestar.di import NamedDependency
from litestar.exceptions import NotAuthorizedException
from litestar.params import FromPath
from litestar.response import Template

from services.console import objects
from services.console.api_objects import find
from services.console.context import ConsoleContext
from services.console.dashboard.pages import AuthedRequest, page, to_login

NEW_RULE: dict[str, Any] = {
    "type": "consecutive",
    "match": {"tenant": "*"},
    "failures": 3,
    "successes": 2,
    "severity": "warning",
    "title": "{service}: {check} is down",
}


def _pretty(body: dict[str, Any]) -> str:
    return json.dumps(body, indent=2, sort_keys=True, default=str)


@get("/rules", include_in_schema=False)
async def rules(request: AuthedRequest, ctx: NamedDependency[ConsoleContext]) -> Template:
    scope = request.user.tenant
    listed = await objects.visible(ctx, "rule", scope)
    channels = await objects.visible(ctx, "channel", scope)
    return page(request, "rules.html", rules=listed, channels=channels)


@get("/rules/new", include_in_schema=False)
async def new_rule(request: AuthedRequest) -> Template:
    return page(request, "rule_edit.html", rule=None, body=_pretty(NEW_RULE))


@get("/rules/{name:str}/edit", include_in_schema=False)
async def edit_rule(
    request: AuthedRequest, ctx: NamedDependency[ConsoleContext], name: FromPath[str]
) -> Template:
    found = await find(ctx, "rule", name, request.user)
    body = {k: v for k, v in found.body.items() if k != "name"}
    return page(request, "rule_edit.html", rule=found, body=_pretty(body))


@get("/silences", include_in_schema=False)
async def silences(request: AuthedRequest, ctx: NamedDependency[ConsoleContext]) -> Template:
    scope = request.user.tenant
    return page(
        request,
        "silences.html",
        silences=await objects.visible(ctx, "silence", scope),
        maintenance=await objects.visible(ctx, "maintenance", scope),
    )


router = Router(
    "/",
    route_handlers=[rules, new_rule, edit_rule, silences],
    exception_handlers={NotAuthorizedException: to_login},
)
