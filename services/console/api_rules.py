"""Rule extras beside the CRUD: enable / disable (the dashboard's toggle), validate, and
preview (dry-run a rule over the last hours of check results and metric samples: when
would it have fired and resolved)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import msgspec
from litestar import Request, Router, post
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.exceptions import ValidationException
from litestar.params import FromPath, JSONBody

from services.archiver import replay
from services.console import store
from services.console.api_objects import find, write
from services.console.auth import Principal, operator_guard
from services.console.context import ConsoleContext
from services.console.objects import Name, ObjectOut

AuthedRequest = Request[Principal, str, State]
Hours = Annotated[int, msgspec.Meta(ge=1, le=168)]


class Candidate(msgspec.Struct, frozen=True, kw_only=True):
    """A rule body not saved (yet)."""

    name: Name
    body: dict[str, Any]


class Validation(msgspec.Struct, frozen=True, kw_only=True):
    valid: bool
    error: str | None = None


class PreviewAsk(msgspec.Struct, frozen=True, kw_only=True):
    hours: Hours = 24


class CandidatePreview(msgspec.Struct, frozen=True, kw_only=True):
    name: Name
    body: dict[str, Any]
    hours: Hours = 24


class Transition(msgspec.Struct, frozen=True, kw_only=True):
    at: datetime
    state: str
    tenant: str
    service: str
    check: str
    title: str


class Preview(msgspec.Struct, frozen=True, kw_only=True):
    since: datetime
    until: datetime
    source: str  # "stream" or "archive": where the results were read from
    fired: int
    resolved: int
    transitions: list[Transition]


@post("/rules/validate", status_code=200, summary="Check a rule body without saving it")
async def validate(request: AuthedRequest, data: JSONBody[Candidate]) -> Validation:
    try:
        store.scope("rule", store.parse("rule", data.name, data.body), request.user.tenant)
    except store.StoreError as exc:
        return Validation(valid=False, error=str(exc))
    return Validation(valid=True)


async def _toggle(request: AuthedRequest, ctx: ConsoleContext, name: str, on: bool) -> ObjectOut:
    current = await find(ctx, "rule", name, request.user)
    return await write(ctx, "rule", name, request.user, current.body, enabled=on)


@post(
    "/rules/{name:str}/enable",
    guards=[operator_guard],
    status_code=200,
    summary="Enable a rule (a file rule too: the API then overrides it)",
)
async def enable(
    request: AuthedRequest, ctx: NamedDependency[ConsoleContext], name: FromPath[str]
) -> ObjectOut:
    return await _toggle(request, ctx, name, True)


@post(
    "/rules/{name:str}/disable",
    guards=[operator_guard],
    status_code=200,
    summary="Disable a rule (a file rule too: the API then overrides it)",
)
async def disable(
    request: AuthedRequest, ctx: NamedDependency[ConsoleContext], name: FromPath[str]
) -> ObjectOut:
    return await _toggle(request, ctx, name, False)


async def _preview(ctx: ConsoleContext, rule: Any, hours: int, tenant: str | None) -> Preview:
    until = datetime.now(UTC)
    since = until - timedelta(hours=hours)
    f = replay.Filter(since, until, tenant)
    async with ctx.pool.connection() as conn:
        source, results = await replay.results(ctx.redis, ctx.names, conn, f)
        events = await replay.replay(results, [rule])
        # A rule on a metric sees the archived samples (a rule watches one kind or the other).
        events += await replay.replay(replay.samples_from_archive(conn, f), [rule])
    lines = sorted(
        (replay.line(e) for e in events), key=lambda x: (x.at, x.state != "firing", x.service)
    )
    return Preview(
        since=since,
        until=until,
        source=source,
        fired=sum(x.state == "firing" for x in lines),
        resolved=sum(x.state == "resolved" for x in lines),
        transitions=[
            Transition(
                at=x.at,
                state=x.state,
                tenant=x.tenant,
                service=x.service,
                check=x.check,
                title=x.title,
            )
            for x in lines
        ],
    )


@post(
    "/rules/preview",
    status_code=200,
    summary="Dry-run an unsaved rule over the last hours of check results",
)
async def preview_candidate(
    request: AuthedRequest, ctx: NamedDependency[ConsoleContext], data: JSONBody[CandidatePreview]
) -> Preview:
    me = request.user
    try:
        rule = store.parse("rule", data.name, data.body)
        store.scope("rule", rule, me.tenant)
    except store.StoreError as exc:
        raise ValidationException(str(exc)) from exc
    return await _preview(ctx, rule, data.hours, me.tenant)


@post(
    "/rules/{name:str}/preview",
    status_code=200,
    summary="Dry-run a rule over the last hours of check results",
)
async def preview(
    request: AuthedRequest,
    ctx: NamedDependency[ConsoleContext],
    name: FromPath[str],
    data: JSONBody[PreviewAsk],
) -> Preview:
    me = request.user
    current = await find(ctx, "rule", name, me)
    return await _preview(ctx, store.parse("rule", name, current.body), data.hours, me.tenant)


router = Router(
    "/api/v1",
    route_handlers=[validate, enable, disable, preview_candidate, preview],
    tags=["rules"],
)
