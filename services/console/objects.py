"""What the API shows and accepts for managed objects, and the change-and-publish step.

An object comes from the API (stored, may be changed) or from the YAML file (shown,
``source: config``; a rule or channel of the file is overridden by writing one of the
same name through the API).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Annotated, Any, Literal, TypeVar

import msgspec
from litestar.exceptions import HTTPException, NotFoundException, ValidationException
from psycopg import AsyncConnection

from services.console import store
from services.console.context import ConsoleContext
from shared import liveconfig
from shared.config import Config

Name = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,99}$")]
T = TypeVar("T")


class ObjectIn(msgspec.Struct, frozen=True, kw_only=True):
    """A new object: its name and its body in the form the YAML file uses."""

    name: Name
    body: dict[str, Any]
    enabled: bool = True


class ObjectChange(msgspec.Struct, frozen=True, kw_only=True):
    """A new body; with ``version``, refused (409) unless the object is still at it."""

    body: dict[str, Any]
    version: int | None = None


class ObjectOut(msgspec.Struct, frozen=True, kw_only=True):
    kind: str
    name: str
    source: Literal["api", "config"]
    tenant: str | None
    enabled: bool
    version: int
    updated_by: str
    updated_at: datetime | None
    body: dict[str, Any]  # channel secrets appear as "***"


def shown(stored: store.Stored) -> ObjectOut:
    return ObjectOut(
        kind=stored.kind,
        name=stored.name,
        source="api",
        tenant=stored.tenant,
        enabled=stored.enabled,
        version=stored.version,
        updated_by=stored.updated_by,
        updated_at=stored.updated_at,
        body=store.mask(stored.kind, stored.body),
    )


def from_config(kind: str, config: Config) -> dict[str, Any]:
    """The file's objects of ``kind`` by name (routes, which have none, by position)."""
    if kind == "rule":
        return {r.name: r for r in config.all_rules}
    if kind == "channel":
        return {c.name: c for c in config.channels}
    if kind == "silence":
        return {s.id: s for s in config.silences}
    if kind == "maintenance":
        return {m.name: m for m in config.maintenance}
    return {f"config-{i}": r for i, r in enumerate(config.routes)}


def config_shown(kind: str, name: str, obj: Any) -> ObjectOut:
    body = msgspec.to_builtins(obj, enc_hook=liveconfig.enc_hook)
    return ObjectOut(
        kind=kind,
        name=name,
        source="config",
        tenant=store.owner(kind, obj),
        enabled=True,
        version=0,
        updated_by="config",
        updated_at=None,
        body=store.mask(kind, body),
    )


async def visible(ctx: ConsoleContext, kind: str, tenant: str | None) -> list[ObjectOut]:
    """API objects, then the file's objects that no API object of that name overrides."""
    async with ctx.pool.connection() as conn:
        rows = await store.listing(conn, kind, tenant)
    taken = {r.name for r in rows}
    out = [shown(r) for r in rows]
    for name, obj in from_config(kind, ctx.config).items():
        if name not in taken and (tenant is None or store.owner(kind, obj) == tenant):
            out.append(config_shown(kind, name, obj))
    return out


def checked(kind: str, name: str, body: dict[str, Any], tenant: str | None) -> str | None:
    """Validate ``body``; returns the tenant to store it under. 400 on any problem."""
    try:
        return store.scope(kind, store.parse(kind, name, body), tenant)
    except store.StoreError as exc:
        raise ValidationException(str(exc)) from exc


async def check_references(
    conn: AsyncConnection[Any],
    ctx: ConsoleContext,
    kind: str,
    body: dict[str, Any],
    name: str,
    tenant: str | None,
) -> None:
    """A route names only channels the caller can see (the file's count for unscoped tokens)."""
    if kind != "route":
        return
    known = {c.name for c in await store.listing(conn, "channel", tenant) if c.enabled}
    if tenant is None:
        known |= {c.name for c in ctx.config.channels}
    for i, channel in enumerate(store.parse(kind, name, body).channels):
        if channel not in known:
            raise store.StoreError(f"channels[{i}]: unknown channel {channel!r}")


async def check_unused(conn: AsyncConnection[Any], kind: str, name: str) -> None:
    """A channel that an API route still sends to cannot be deleted."""
    if kind != "channel":
        return
    for route in await store.listing(conn, "route", None):
        if name in route.body.get("channels", []):
            raise store.Conflict(f"route {route.name!r} sends to channel {name!r}")


async def change(ctx: ConsoleContext, op: Callable[[AsyncConnection[Any]], Awaitable[T]]) -> T:
    """Run ``op`` in a transaction with the generation bump, then publish the new set."""
    try:
        async with ctx.pool.connection() as conn, conn.transaction():
            result = await op(conn)
            live = await store.snapshot(conn)
    except store.Missing as exc:
        raise NotFoundException(str(exc)) from exc
    except store.Conflict as exc:
        raise HTTPException(status_code=409, detail=str(exc)) from exc
    except store.StoreError as exc:
        raise ValidationException(str(exc)) from exc
    await liveconfig.publish(ctx.redis, ctx.names, live)
    return result


async def republish(ctx: ConsoleContext) -> None:
    """Publish the stored set again (at start: Redis may have lost it)."""
    async with ctx.pool.connection() as conn:
        live = await store.current(conn)
    await liveconfig.publish(ctx.redis, ctx.names, live)
