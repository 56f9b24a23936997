"""Alerts as the dashboard lists them: open ones and the recent history, filtered."""

from __future__ import annotations

from typing import Any

import msgspec
from psycopg import AsyncConnection
from psycopg.rows import class_row

from services.archiver.lifecycle import OPEN, Alert

HISTORY = 100
_COLUMNS = ", ".join(Alert.__slots__)


class AlertFilter(msgspec.Struct, frozen=True, kw_only=True):
    state: str | None = None
    severity: str | None = None
    tenant: str | None = None
    service: str | None = None


async def listing(
    conn: AsyncConnection[Any], scope: str | None, wanted: AlertFilter, *, open_only: bool
) -> list[Alert]:
    """Open alerts (``open_only``) or closed ones, newest first; ``scope`` is the
    caller's tenant, which no filter can widen."""
    where = ["(state = ANY(%(open)s)) = %(open_only)s"]
    params: dict[str, Any] = {"open": list(OPEN), "open_only": open_only, "limit": HISTORY}
    for name in ("state", "severity", "tenant", "service"):
        if value := getattr(wanted, name):
            where.append(f"{name} = %({name})s")
            params[name] = value
    if scope is not None:
        where.append("tenant = %(scope)s")
        params["scope"] = scope
    async with conn.cursor(row_factory=class_row(Alert)) as cur:
        await cur.execute(
            f"SELECT {_COLUMNS} FROM alerts WHERE {' AND '.join(where)} "
            "ORDER BY started_at DESC, id DESC LIMIT %(limit)s",
            params,
        )
        return await cur.fetchall()
