"""Rules, silences, maintenance windows, channels and routes managed through the API.

Each object is a JSON body validated by the type the YAML file uses for it. Every
change is audited and bumps the generation in the same transaction, then the whole
active set is published to Redis (``shared.liveconfig``) for running services.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import msgspec
from psycopg import AsyncConnection
from psycopg.rows import class_row
from psycopg.types.json import Jsonb

from services.archiver.lifecycle import log_audit
from services.evaluator.muting import MaintenanceWindow, Silence
from services.evaluator.rules import AnyRule
from services.notifier.channels import AnyChannelConfig
from services.notifier.routing import Route
from shared.configbase import dec_hook
from shared.errors import VigilError
from shared.liveconfig import LiveSet

Kind = Literal["rule", "silence", "maintenance", "channel", "route"]
TYPES: dict[str, Any] = {
    "rule": AnyRule,
    "silence": Silence,
    "maintenance": MaintenanceWindow,
    "channel": AnyChannelConfig,
    "route": Route,
}
# The body field that holds the object's name, when the type has one.
_NAME_FIELD = {"rule": "name", "silence": "id", "maintenance": "name", "channel": "name"}
_GLOB = frozenset("*?[")


class StoreError(VigilError):
    """A refused change: bad body, wrong tenant, name taken."""


class Conflict(StoreError):
    """The name is taken (create) or the version moved on (update)."""


class Missing(StoreError):
    """No such object (or not in the caller's tenant)."""


@dataclass(frozen=True, slots=True)
class Stored:
    kind: str
    name: str
    tenant: str | None
    body: dict[str, Any]
    enabled: bool
    version: int
    updated_by: str
    updated_at: datetime


_COLUMNS = "kind, name, tenant, body, enabled, version, updated_by, updated_at"


def parse(kind: str, name: str, body: dict[str, Any]) -> Any:
    """The typed object of ``body`` (its name taken from the path); StoreError names
    the field that is wrong."""
    if field := _NAME_FIELD.get(kind):
        body = body | {field: name}
    try:
        return msgspec.convert(body, TYPES[kind], dec_hook=dec_hook, strict=False)
    except msgspec.ValidationError as exc:
        raise StoreError(str(exc)) from exc


def owner(kind: str, obj: Any) -> str | None:
    """The one tenant an object concerns, when its selector names one exactly."""
    if kind in ("rule", "route"):
        tenant = obj.match.tenant
    elif kind in ("silence", "maintenance"):
        tenant = obj.matchers.get("tenant")
    else:
        return None
    return None if tenant is None or _GLOB & set(tenant) else str(tenant)


def scope(kind: str, obj: Any, caller_tenant: str | None) -> str | None:
    """The tenant to store the object under; a tenant's token may only touch its own."""
    found = owner(kind, obj)
    if caller_tenant is None:
        return found
    if kind != "channel" and found != caller_tenant:
        where = {"rule": "match.tenant", "route": "match.tenant"}.get(kind, "matchers.tenant")
        raise StoreError(f"{where} must be {caller_tenant!r} for this token")
    return caller_tenant


async def listing(conn: AsyncConnection[Any], kind: str, tenant: str | None) -> list[Stored]:
    async with conn.cursor(row_factory=class_row(Stored)) as cur:
        await cur.execute(
            f"SELECT {_COLUMNS} FROM console_objects WHERE kind = %(kind)s "
            "AND (%(tenant)s::text IS NULL OR tenant = %(tenant)s) ORDER BY name",
            {"kind": kind, "tenant": tenant},
        )
        return await cur.fetchall()


async def get(conn: AsyncConnection[Any], kind: str, name: str, tenant: str | None) -> Stored:
    async with conn.cursor(row_factory=class_row(Stored)) as cur:
        await cur.execute(
            f"SELECT {_COLUMNS} FROM console_objects WHERE kind = %s AND name = %s",
            (kind, name),
        )
        found = await cur.fetchone()
    if found is None or (tenant is not None and found.tenant != tenant):
        raise Missing(f"no {kind} {name!r}")
    return found


async def create(
    conn: AsyncConnection[Any],
    kind: str,
    name: str,
    tenant: str | None,
    body: dict[str, Any],
    by: str,
    now: datetime,
    enabled: bool = True,
    action: str = "create",
) -> Stored:
    async with conn.cursor(row_factory=class_row(Stored)) as cur:
        await cur.execute(
            f"INSERT INTO console_objects ({_COLUMNS}) VALUES (%s, %s, %s, %s, %s, 1, %s, %s) "
            f"ON CONFLICT DO NOTHING RETURNING {_COLUMNS}",
            (kind, name, tenant, Jsonb(body), enabled, by, now),
        )
        made = await cur.fetchone()
    if made is None:
        raise Conflict(f"{kind} {name!r} exists already")
    await log_audit(conn, now, by, f"{kind}.{action}", f"{kind}:{name}", {"body": _redacted(made)})
    return made


async def update(
    conn: AsyncConnection[Any],
    old: Stored,
    tenant: str | None,
    body: dict[str, Any],
    by: str,
    now: datetime,
    enabled: bool | None = None,
) -> Stored:
    """Replace the body (and maybe the enabled flag) of ``old``, which must be current."""
    async with conn.cursor(row_factory=class_row(Stored)) as cur:
        await cur.execute(
            f"UPDATE console_objects SET tenant = %s, body = %s, enabled = %s, "
            "version = version + 1, updated_by = %s, updated_at = %s "
            f"WHERE kind = %s AND name = %s AND version = %s RETURNING {_COLUMNS}",
            (
                tenant,
                Jsonb(body),
                old.enabled if enabled is None else enabled,
                by,
                now,
                old.kind,
                old.name,
                old.version,
            ),
        )
        new = await cur.fetchone()
    if new is None:
        raise Conflict(f"{old.kind} {old.name!r} was changed meanwhile; read it again")
    action = "update" if enabled is None else ("enable" if enabled else "disable")
    details = {"version": new.version, "body": _redacted(new)}
    await log_audit(conn, now, by, f"{old.kind}.{action}", f"{old.kind}:{old.name}", details)
    return new


async def remove(conn: AsyncConnection[Any], old: Stored, by: str, now: datetime) -> None:
    await conn.execute(
        "DELETE FROM console_objects WHERE kind = %s AND name = %s", (old.kind, old.name)
    )
    await log_audit(conn, now, by, f"{old.kind}.delete", f"{old.kind}:{old.name}", {})


def _redacted(stored: Stored) -> dict[str, Any]:
    """Audit rows never hold secrets either."""
    return mask(stored.kind, stored.body)


def mask(kind: str, body: dict[str, Any]) -> dict[str, Any]:
    """``body`` with every secret field of a channel replaced by ``"***"``."""
    if kind != "channel":
        return body
    config = parse(kind, str(body.get("name", "")), body)
    return {k: ("***" if k in config.secret_fields and v else v) for k, v in body.items()}


def keep_secrets(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """A channel body sent back as read (secrets as ``"***"``) keeps the stored secrets."""
    return {k: old.get(k) if v == "***" else v for k, v in new.items()}


async def snapshot(conn: AsyncConnection[Any]) -> LiveSet:
    """Bump the generation and read the active set; call inside the change's transaction,
    so generations order snapshots (the row lock serialises concurrent changes)."""
    row = await (
        await conn.execute(
            "UPDATE console_generation SET generation = generation + 1 RETURNING generation"
        )
    ).fetchone()
    assert row is not None
    return await current(conn, int(row[0]))


async def current(conn: AsyncConnection[Any], generation: int | None = None) -> LiveSet:
    """The active set as stored (at the stored generation unless one is given)."""
    if generation is None:
        found = await (await conn.execute("SELECT generation FROM console_generation")).fetchone()
        generation = int(found[0]) if found else 0
    cur = await conn.execute(
        "SELECT kind, name, body, enabled FROM console_objects ORDER BY kind, name"
    )
    parts: dict[str, list[Any]] = {k: [] for k in TYPES}
    disabled: list[str] = []
    for kind, name, body, enabled in await cur.fetchall():
        if enabled:
            parts[kind].append(parse(kind, name, body))
        elif kind == "rule":
            disabled.append(name)
    return LiveSet(
        generation=generation,
        rules=parts["rule"],
        disabled_rules=disabled,
        silences=parts["silence"],
        maintenance=parts["maintenance"],
        channels=parts["channel"],
        routes=parts["route"],
    )
