"""Retention: drop expired day partitions, delete expired rows of the small tables,
create partitions ahead of time. ``plan`` says what would happen (``--dry-run``);
``apply`` does it. Dropping a partition costs the same whatever the day held.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from psycopg import AsyncConnection, sql

from services.archiver import partitions
from services.archiver.lifecycle import log_audit
from services.archiver.settings import DATED

# Open alerts are never pruned, however old: someone still has to act on them.
EXTRA_WHERE = {"alerts": "AND state IN ('resolved', 'expired')"}


@dataclass(frozen=True, slots=True)
class Drop:
    table: str
    partition: str
    day: str


@dataclass(frozen=True, slots=True)
class Delete:
    table: str
    before: datetime
    rows: int


@dataclass(slots=True)
class Plan:
    drops: list[Drop] = field(default_factory=list)
    deletes: list[Delete] = field(default_factory=list)
    creates: list[tuple[str, str]] = field(default_factory=list)  # (table, partition)

    def lines(self) -> list[str]:
        out = [f"drop partition {d.partition} ({d.table}, {d.day})" for d in self.drops]
        out += [
            f"delete {d.rows} rows from {d.table} older than {d.before:%Y-%m-%d %H:%M}Z"
            for d in self.deletes
        ]
        out += [f"create partition {p} ({t})" for t, p in self.creates]
        return out


async def plan(conn: AsyncConnection[Any], days: dict[str, int], now: datetime, ahead: int) -> Plan:
    """What retention would do at ``now``; ``days`` is the retention of each table."""
    today = partitions.day_of(now)
    result = Plan()
    for table, column in DATED.items():
        if table in partitions.PARTITIONED:
            have = await partitions.existing(conn, table)
            for day in partitions.expired(have, today, days[table]):
                result.drops.append(Drop(table, have[day], day.isoformat()))
            for day in partitions.ahead(today, ahead):
                if day not in have:
                    result.creates.append((table, partitions.partition_name(table, day)))
            continue
        before = now.astimezone(UTC) - timedelta(days=days[table])
        cur = await conn.execute(
            sql.SQL("SELECT count(*) FROM {} WHERE {} < %s " + EXTRA_WHERE.get(table, "")).format(
                sql.Identifier(table), sql.Identifier(column)
            ),
            (before,),
        )
        count = (await cur.fetchone() or (0,))[0]
        if count:
            result.deletes.append(Delete(table, before, int(count)))
    return result


async def apply(conn: AsyncConnection[Any], todo: Plan, now: datetime) -> None:
    """Carry out a plan, one short transaction per step (``conn`` is autocommit)."""
    for drop in todo.drops:
        await partitions.drop(conn, drop.table, drop.partition)
    for delete in todo.deletes:
        async with conn.transaction():
            await conn.execute(
                sql.SQL("DELETE FROM {} WHERE {} < %s " + EXTRA_WHERE.get(delete.table, "")).format(
                    sql.Identifier(delete.table), sql.Identifier(DATED[delete.table])
                ),
                (delete.before,),
            )
    by_table: dict[str, list[str]] = {}
    for table, name in todo.creates:
        by_table.setdefault(table, []).append(name)
    for table, names in by_table.items():
        async with conn.transaction():
            await partitions.ensure(conn, table, [partitions.parse_day(n) for n in names])
    if todo.drops or todo.deletes:
        async with conn.transaction():
            await log_audit(conn, now, "system", "prune", "history", {"done": todo.lines()})
