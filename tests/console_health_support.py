"""A small estate for the health and dashboard tests: two tenants, three services, and
helpers that put results where the probe and the archiver put them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from psycopg import AsyncConnection
from redis.asyncio import Redis

from schemas import AlertEvent, CheckResult
from services.archiver.store import ALERTS, RESULTS, write
from services.probe.cache import latest_key_name
from shared.config import Config, parse_config
from shared.streams import StreamNames, encode

ESTATE = """
tenants: [{id: acme}, {id: globex}]
checks:
  - {name: web, type: http, tenant: acme, service: shop, tier: critical, url: "http://127.0.0.1:9/"}
  - {name: db, type: tcp, tenant: acme, service: shop, host: 127.0.0.1, port: 9}
  - {name: pay, type: http, tenant: acme, service: payments, url: "http://127.0.0.1:9/"}
  - {name: api, type: http, tenant: globex, service: api, url: "http://127.0.0.1:9/"}
rules:
  - {name: acme-down, type: consecutive, match: {tenant: acme}, failures: 3, successes: 2,
     severity: critical, title: "{service}: {check} is down"}
  - {name: globex-down, type: consecutive, match: {tenant: globex}, failures: 3, severity: warning,
     title: "{check} is down"}
channels:
  - {name: ops-discord, type: discord, url: "https://discord.example/api/webhooks/1/SECRET-TOKEN"}
"""


def estate() -> Config:
    return parse_config(ESTATE, "vigil.yaml", {})


def result(
    tenant: str, service: str, check: str, status: str, latency_ms: float, at: datetime
) -> CheckResult:
    return CheckResult(
        tenant=tenant,
        service=service,
        check=check,
        tier="core",
        status=status,  # type: ignore[arg-type]
        latency_ms=latency_ms,
        observed_at=at,
    )


async def cache(redis: Redis, names: StreamNames, r: CheckResult, ttl_s: int = 120) -> None:
    """What the probe's flush does for a result: the latest-result key with its TTL."""
    key = names.key(latest_key_name(r.tenant, r.check))
    await redis.set(key, encode(r)[b"data"], ex=ttl_s)


async def archive(database_url: str, results: list[CheckResult]) -> None:
    """What the archiver does: rows in check_results and their hourly rollups."""
    items = [(f"{i}-0".encode(), r) for i, r in enumerate(results, start=1)]
    async with await AsyncConnection.connect(database_url) as conn:
        await write(conn, RESULTS, items, today=datetime.now(UTC).date(), retention_days=60)


def minutes_ago(n: float) -> datetime:
    return datetime.now(UTC) - timedelta(minutes=n)


async def fire(database_url: str, tenant: str, service: str, title: str) -> int:
    """An alert that started firing, archived as the archiver does; returns its id."""
    event = AlertEvent(
        fingerprint=f"{tenant}-{service}-{title}",
        rule="down",
        tenant=tenant,
        service=service,
        severity="critical",
        state="firing",
        title=title,
        started_at=minutes_ago(1),
    )
    async with await AsyncConnection.connect(database_url) as conn:
        await write(
            conn,
            ALERTS,
            [(f"{event.event_id}-0".encode(), event)],
            today=datetime.now(UTC).date(),
            retention_days=60,
        )
        row = await (
            await conn.execute("SELECT id FROM alerts WHERE fingerprint = %s", (event.fingerprint,))
        ).fetchone()
    assert row is not None
    return int(row[0])
