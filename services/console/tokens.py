"""Create, list and revoke API tokens (``vigil token …`` and the admin API)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import class_row

from services.console.auth import ROLES, Role, new_token, token_hash
from shared.errors import VigilError


@dataclass(frozen=True, slots=True)
class TokenInfo:
    """A token as listed: never the token itself, nor its hash."""

    id: int
    name: str
    role: Role
    tenant: str | None
    created_by: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


_COLUMNS = "id, name, role, tenant, created_by, created_at, last_used_at, revoked_at"


async def create(
    conn: AsyncConnection[Any], name: str, role: str, tenant: str | None, created_by: str
) -> tuple[TokenInfo, str]:
    """A new token: its listing and the token itself, which is shown this once only."""
    if role not in ROLES:
        raise VigilError(f"unknown role {role!r}; one of {', '.join(ROLES)}")
    if not name.strip():
        raise VigilError("a token needs a name")
    token = new_token()
    async with conn.cursor(row_factory=class_row(TokenInfo)) as cur:
        await cur.execute(
            f"INSERT INTO api_tokens (name, token_hash, role, tenant, created_by) "
            f"VALUES (%s, %s, %s, %s, %s) RETURNING {_COLUMNS}",
            (name, token_hash(token), role, tenant or None, created_by),
        )
        info = await cur.fetchone()
    await conn.commit()
    assert info is not None
    return info, token


async def listing(conn: AsyncConnection[Any], tenant: str | None = None) -> list[TokenInfo]:
    """Every token, newest first; only one tenant's when ``tenant`` is given."""
    async with conn.cursor(row_factory=class_row(TokenInfo)) as cur:
        await cur.execute(
            f"SELECT {_COLUMNS} FROM api_tokens "
            "WHERE %(tenant)s::text IS NULL OR tenant = %(tenant)s ORDER BY id DESC",
            {"tenant": tenant},
        )
        return await cur.fetchall()


async def revoke(conn: AsyncConnection[Any], token_id: int) -> bool:
    """Revoke a token; False when there is no such live token."""
    cur = await conn.execute(
        "UPDATE api_tokens SET revoked_at = now() WHERE id = %s AND revoked_at IS NULL",
        (token_id,),
    )
    await conn.commit()
    return cur.rowcount == 1
