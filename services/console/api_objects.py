"""CRUD endpoints for every managed kind: ``/api/v1/{rules,silences,maintenance,channels,
routes}``. Reading needs a token; writing needs the kind's role. Every change takes
effect in running evaluators and notifiers within seconds (``shared.liveconfig``)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from litestar import Request, Router, delete, get, post, put
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.exceptions import HTTPException, NotFoundException
from litestar.params import FromPath, JSONBody
from psycopg import AsyncConnection

from services.console import store
from services.console.auth import Principal
from services.console.context import ConsoleContext
from services.console.objects import (
    ObjectChange,
    ObjectIn,
    ObjectOut,
    change,
    check_references,
    check_unused,
    checked,
    config_shown,
    from_config,
    shown,
    visible,
)

AuthedRequest = Request[Principal, str, State]


async def find(ctx: ConsoleContext, kind: str, name: str, me: Principal) -> ObjectOut:
    """One object the caller may see (API first, then the file), else 404."""
    async with ctx.pool.connection() as conn:
        try:
            return shown(await store.get(conn, kind, name, me.tenant))
        except store.Missing:
            pass
    obj = from_config(kind, ctx.config).get(name)
    if obj is None or me.tenant not in (None, store.owner(kind, obj)):
        raise NotFoundException(f"no {kind} {name!r}")
    return config_shown(kind, name, obj)


async def write(
    ctx: ConsoleContext,
    kind: str,
    name: str,
    me: Principal,
    body: dict[str, Any],
    *,
    version: int | None = None,
    enabled: bool | None = None,
) -> ObjectOut:
    """Replace ``name``'s body (and maybe flag); a file object becomes an API override."""
    tenant = checked(kind, name, body, me.tenant)
    now = datetime.now(UTC)

    async def op(conn: AsyncConnection[Any]) -> store.Stored:
        await check_references(conn, ctx, kind, body, name, me.tenant)
        try:
            old = await store.get(conn, kind, name, me.tenant)
        except store.Missing:
            await find(ctx, kind, name, me)  # 404 unless the file has it
            # Overriding the file's object: audited as what the caller did to it.
            action = "update" if enabled is None else ("enable" if enabled else "disable")
            on = True if enabled is None else enabled
            return await store.create(conn, kind, name, tenant, body, me.actor, now, on, action)
        new = store.keep_secrets(old.body, body) if kind == "channel" else body
        if version is not None and version != old.version:
            raise store.Conflict(f"{kind} {name!r} is at version {old.version}, not {version}")
        return await store.update(conn, old, tenant, new, me.actor, now, enabled)

    return shown(await change(ctx, op))


def crud(kind: str, plural: str, guard: Any) -> Router:
    """The five endpoints of one kind; ``guard`` says who may write."""

    @get(f"/{plural}", operation_id=f"list_{plural}", summary=f"List {plural}")
    async def listing(
        request: AuthedRequest, ctx: NamedDependency[ConsoleContext]
    ) -> list[ObjectOut]:
        return await visible(ctx, kind, request.user.tenant)

    @get(f"/{plural}/{{name:str}}", operation_id=f"get_{kind}", summary=f"One {kind}")
    async def one(
        request: AuthedRequest, ctx: NamedDependency[ConsoleContext], name: FromPath[str]
    ) -> ObjectOut:
        return await find(ctx, kind, name, request.user)

    @post(f"/{plural}", guards=[guard], operation_id=f"create_{kind}", summary=f"Create a {kind}")
    async def create(
        request: AuthedRequest, ctx: NamedDependency[ConsoleContext], data: JSONBody[ObjectIn]
    ) -> ObjectOut:
        me = request.user
        tenant = checked(kind, data.name, data.body, me.tenant)
        if data.name in from_config(kind, ctx.config) and kind not in ("rule", "channel"):
            raise HTTPException(status_code=409, detail=f"the file defines {kind} {data.name!r}")
        now = datetime.now(UTC)

        async def op(conn: AsyncConnection[Any]) -> store.Stored:
            await check_references(conn, ctx, kind, data.body, data.name, me.tenant)
            return await store.create(
                conn, kind, data.name, tenant, data.body, me.actor, now, data.enabled
            )

        return shown(await change(ctx, op))

    @put(
        f"/{plural}/{{name:str}}",
        guards=[guard],
        operation_id=f"update_{kind}",
        summary=f"Replace a {kind}'s body (a file {kind} of that name is overridden)",
    )
    async def update(
        request: AuthedRequest,
        ctx: NamedDependency[ConsoleContext],
        name: FromPath[str],
        data: JSONBody[ObjectChange],
    ) -> ObjectOut:
        return await write(ctx, kind, name, request.user, data.body, version=data.version)

    @delete(
        f"/{plural}/{{name:str}}",
        guards=[guard],
        operation_id=f"delete_{kind}",
        summary=f"Delete an API-managed {kind}",
    )
    async def remove(
        request: AuthedRequest, ctx: NamedDependency[ConsoleContext], name: FromPath[str]
    ) -> None:
        me = request.user
        now = datetime.now(UTC)

        async def op(conn: AsyncConnection[Any]) -> None:
            old = await store.get(conn, kind, name, me.tenant)
            await check_unused(conn, kind, name)
            await store.remove(conn, old, me.actor, now)

        await change(ctx, op)

    return Router("/api/v1", route_handlers=[listing, one, create, update, remove], tags=[plural])
