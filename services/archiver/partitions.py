"""Day partitions of the partitioned history tables: create ahead, list, drop.

A partition is named ``<table>_pYYYYMMDD`` and holds ``[day, day + 1)`` in UTC.
Dropping a day is one catalogue operation, however many rows it holds.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from psycopg import AsyncConnection, sql

PARTITIONED = ("check_results", "metric_samples")
_SUFFIX = re.compile(r"_p(\d{8})$")
# One lock id for partition DDL, so concurrent archivers do not race on CREATE.
_DDL_LOCK = 0x76696731


def day_of(at: datetime) -> date:
    return at.astimezone(UTC).date()


def partition_name(table: str, day: date) -> str:
    return f"{table}_p{day:%Y%m%d}"


def day_start(day: date) -> datetime:
    return datetime.combine(day, time(), UTC)


def parse_day(partition: str) -> date:
    m = _SUFFIX.search(partition)
    if m is None:
        raise ValueError(f"not a day partition: {partition}")
    return datetime.strptime(m[1], "%Y%m%d").date()


async def existing(conn: AsyncConnection[Any], table: str) -> dict[date, str]:
    """The day partitions of ``table``, by day."""
    cur = await conn.execute(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "WHERE i.inhparent = %s::regclass",
        (table,),
    )
    days: dict[date, str] = {}
    for (name,) in await cur.fetchall():
        if _SUFFIX.search(name):
            days[parse_day(name)] = name
    return days


async def ensure(conn: AsyncConnection[Any], table: str, days: Iterable[date]) -> list[str]:
    """Create the missing partitions of ``table`` for ``days``; returns those created.

    Runs inside the caller's transaction; the advisory lock serialises
    archivers that would otherwise both try to create the same day.
    """
    wanted = sorted(set(days))
    if not wanted:
        return []
    await conn.execute("SELECT pg_advisory_xact_lock(%s)", (_DDL_LOCK,))
    have = await existing(conn, table)
    created = []
    for day in wanted:
        if day in have:
            continue
        name = partition_name(table, day)
        # CREATE … PARTITION OF would take an ACCESS EXCLUSIVE lock on the parent,
        # blocking every reader; ATTACH takes only SHARE UPDATE EXCLUSIVE.
        await conn.execute(
            sql.SQL("CREATE TABLE {} (LIKE {} INCLUDING DEFAULTS INCLUDING CONSTRAINTS)").format(
                sql.Identifier(name), sql.Identifier(table)
            )
        )
        await conn.execute(
            sql.SQL("ALTER TABLE {} ATTACH PARTITION {} FOR VALUES FROM ({}) TO ({})").format(
                sql.Identifier(table),
                sql.Identifier(name),
                sql.Literal(day_start(day)),
                sql.Literal(day_start(day + timedelta(days=1))),
            )
        )
        created.append(name)
    return created


async def drop(conn: AsyncConnection[Any], table: str, partition: str) -> None:
    """Detach without blocking readers or writers, then drop. Needs an autocommit
    connection: DETACH … CONCURRENTLY cannot run inside a transaction block."""
    cur = await conn.execute(
        "SELECT i.inhdetachpending FROM pg_inherits i "
        "WHERE i.inhparent = %s::regclass AND i.inhrelid = %s::regclass",
        (table, partition),
    )
    row = await cur.fetchone()
    if row is not None:
        # A detach interrupted half-way is finished with FINALIZE.
        mode = "FINALIZE" if row[0] else "CONCURRENTLY"
        await conn.execute(
            sql.SQL("ALTER TABLE {} DETACH PARTITION {} " + mode).format(
                sql.Identifier(table), sql.Identifier(partition)
            )
        )
    await conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(partition)))


def expired(days: Iterable[date], today: date, retention_days: int) -> list[date]:
    """Days wholly older than the retention window: ``day + 1 <= today - retention``."""
    cutoff = today - timedelta(days=retention_days)
    return sorted(d for d in days if d < cutoff)


def ahead(today: date, count: int) -> list[date]:
    """Today and the next ``count`` days: created before data arrives for them."""
    return [today + timedelta(days=i) for i in range(count + 1)]
