"""PostgreSQL check: connect + SELECT 1, connections vs max, longest query, replica lag."""

from __future__ import annotations

from typing import ClassVar

import psycopg
import psycopg.conninfo

from services.probe.monitors.base import CheckConfig, Outcome, ProbeContext, failed, require_url

_STATS = """
SELECT
  (SELECT count(*) FROM pg_stat_activity) AS connections,
  current_setting('max_connections')::int AS max_connections,
  COALESCE((SELECT EXTRACT(EPOCH FROM max(now() - query_start))
            FROM pg_stat_activity
            WHERE state = 'active' AND pid <> pg_backend_pid()), 0)::float AS longest_query_s,
  CASE WHEN pg_is_in_recovery()
       THEN COALESCE(EXTRACT(EPOCH FROM now() - pg_last_xact_replay_timestamp()), 0)::float
  END AS replication_lag_s
"""


class PostgresCheck(CheckConfig, frozen=True, kw_only=True, tag="postgres", tag_field="type"):
    dsn: str  # postgresql://user:${PASSWORD}@host:5432/db
    max_connections_ratio: float = 0.9  # above this share of max_connections: degraded
    max_query_seconds: float | None = None  # a longer active query: degraded
    max_replication_lag_seconds: float | None = None  # a replica further behind: degraded

    def __post_init__(self) -> None:
        if "://" in self.dsn:
            require_url(self.dsn, ("postgresql", "postgres"), field="dsn")
            return
        try:  # the key=value form
            psycopg.conninfo.conninfo_to_dict(self.dsn)
        except psycopg.ProgrammingError as exc:
            raise ValueError(f"dsn: not a connection string ({exc})") from exc


class PostgresMonitor:
    type: ClassVar[str] = "postgres"
    description: ClassVar[str] = (
        "PostgreSQL: SELECT 1, connections vs max, longest query, replication lag"
    )

    async def run(self, check: PostgresCheck, ctx: ProbeContext) -> Outcome:
        try:
            async with await psycopg.AsyncConnection.connect(
                check.dsn, connect_timeout=max(1, int(check.timeout)), autocommit=True
            ) as conn:
                await conn.execute("SELECT 1")
                row = await (await conn.execute(_STATS)).fetchone()
        except psycopg.Error as exc:
            # psycopg messages name host and user, never the password.
            return failed("unhealthy", exc, "postgres")
        assert row is not None
        connections, max_conn, longest, lag = row
        details: dict[str, object] = {
            "connections": connections,
            "max_connections": max_conn,
            "longest_query_s": round(longest, 3),
        }
        if lag is not None:
            details["replication_lag_s"] = round(lag, 3)
        problems = []
        if connections > check.max_connections_ratio * max_conn:
            problems.append(f"{connections}/{max_conn} connections")
        if check.max_query_seconds is not None and longest > check.max_query_seconds:
            problems.append(f"a query running {longest:.0f}s")
        limit = check.max_replication_lag_seconds
        if lag is not None and limit is not None and lag > limit:
            problems.append(f"replication lag {lag:.0f}s")
        if problems:
            return Outcome("degraded", details | {"error": "; ".join(problems)})
        return Outcome("healthy", details)
