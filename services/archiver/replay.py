"""Replay for incident review: re-read check results for a time range (from the
stream, or from the archive when the stream no longer holds the range), run them
through the evaluator's engine in dry-run and compare with what really fired."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import msgspec
from psycopg import AsyncConnection
from redis.asyncio import Redis

from schemas import AlertEvent, CheckResult, MetricSample
from services.archiver import sqlite, sqlite_replay
from services.archiver.embedded import Embedded
from services.archiver.evaluation import DryRun
from services.archiver.trim import parse_id
from services.evaluator.rules import AnyRule
from shared.redisclient import connected
from shared.settings import Settings
from shared.streams import DATA, StreamNames

PAGE = 5_000
# Results reach the stream a little after they were observed: read this far past the end.
ARRIVAL_SLACK_MS = 60_000
Archive = AsyncConnection[Any] | Embedded  # PostgreSQL, or SQLite (sqlite:///path)
# Called after each page read: results read so far, and the time the last one was observed.
Progress = Callable[[int, datetime], None]


@dataclass(frozen=True, slots=True)
class Filter:
    since: datetime
    until: datetime
    tenant: str | None = None
    service: str | None = None

    def done(self, at: datetime) -> float:
        """How far ``at`` is through the range, 0..1."""
        span = (self.until - self.since).total_seconds()
        return min(1.0, max(0.0, (at - self.since).total_seconds() / span)) if span > 0 else 1.0

    def wants(self, tenant: str, service: str, at: datetime) -> bool:
        return (
            self.since <= at < self.until
            and self.tenant in (None, tenant)
            and self.service in (None, service)
        )


async def stream_holds(redis: Redis, stream: str, since: datetime) -> bool:
    """True when nothing at or after ``since`` was ever removed from ``stream``."""
    if not await redis.exists(stream):
        return False
    info = await redis.xinfo_stream(stream)
    at = (int(since.timestamp() * 1000), 0)
    if parse_id(info.get("max-deleted-entry-id") or b"0-0") >= at:
        return False  # XDEL reached into the range
    if int(info.get("entries-added", 0)) == int(info["length"]):
        return True  # nothing was ever trimmed
    # Trimming removes from the head: everything before the first entry left.
    first = info.get("first-entry")
    if first is None:
        return parse_id(info["last-generated-id"]) < at
    return parse_id(first[0]) <= at


async def from_stream(
    redis: Redis,
    stream: str,
    kind: type[Any],
    f: Filter,
    progress: Progress | None = None,
    *,
    by_arrival: bool = True,
) -> AsyncIterator[Any]:
    """Messages of ``stream`` that ``f`` wants. ``by_arrival`` reads only the entries
    that arrived from ``since`` until shortly after ``until``; otherwise the whole
    stream (for the small alerts stream, whose entries may be written much later
    than the times they carry, e.g. by a replayed evaluator)."""
    decoder = msgspec.json.Decoder(kind)
    start, end = "-", "+"
    if by_arrival:
        start = str(int(f.since.timestamp() * 1000))
        end = str(int(f.until.timestamp() * 1000) + ARRIVAL_SLACK_MS)
    read, latest = 0, f.since
    while True:
        page: list[tuple[bytes, dict[bytes, bytes]]] = await redis.xrange(  # type: ignore[assignment]
            stream, min=start, max=end, count=PAGE
        )
        for _, fields in page:
            try:
                message = decoder.decode(fields[DATA])
            except (KeyError, msgspec.DecodeError):
                continue  # the live pipeline dead-lettered these too
            latest = max(latest, _when(message))
            if f.wants(message.tenant, message.service, _when(message)):
                yield message
        read += len(page)
        if progress is not None and page:
            progress(read, latest)
        if len(page) < PAGE:
            return
        start = "(" + page[-1][0].decode()


def _when(message: Any) -> datetime:
    if isinstance(message, AlertEvent):
        return message.ended_at or message.started_at
    return message.observed_at  # type: ignore[no-any-return]


_RESULTS_SQL = """
SELECT tenant, service, check_name, tier, status, latency_ms, details, observed_at, event_id
FROM check_results WHERE observed_at >= %s AND observed_at < %s
  AND (%s::text IS NULL OR tenant = %s) AND (%s::text IS NULL OR service = %s)
ORDER BY split_part(stream_id, '-', 1)::bigint, split_part(stream_id, '-', 2)::bigint
"""


async def results_from_archive(
    conn: AsyncConnection[Any], f: Filter, progress: Progress | None = None
) -> AsyncIterator[CheckResult]:
    params = (f.since, f.until, f.tenant, f.tenant, f.service, f.service)
    read, latest = 0, f.since
    async with conn.cursor(name="replay") as cur:  # server-side: long ranges stream
        await cur.execute(_RESULTS_SQL, params)
        async for row in cur:
            read, latest = read + 1, max(latest, row[7])
            if progress is not None and read % PAGE == 0:
                progress(read, latest)
            yield sqlite_replay.history_result(row)
    if progress is not None and read % PAGE:
        progress(read, latest)  # the last, partial page


async def alerts_from_archive(conn: AsyncConnection[Any], f: Filter) -> list[AlertEvent]:
    cur = await conn.execute(
        "SELECT data FROM (SELECT stream_id, row_to_json(e)::text AS data FROM alert_events e "
        "WHERE coalesce(ended_at, started_at) >= %s AND coalesce(ended_at, started_at) < %s) x "
        "ORDER BY split_part(stream_id, '-', 1)::bigint, split_part(stream_id, '-', 2)::bigint",
        (f.since, f.until),
    )
    decoder = msgspec.json.Decoder(AlertEvent)
    events = [decoder.decode(row[0]) for row in await cur.fetchall()]
    return [e for e in events if f.wants(e.tenant, e.service, _when(e))]


async def results_from_sqlite(
    embedded: Embedded, f: Filter, progress: Progress | None = None
) -> AsyncIterator[CheckResult]:
    """``results_from_archive`` for a SQLite archive: a page at a time from one cursor."""
    cur = await embedded.run(sqlite_replay.open_results, f.since, f.until, f.tenant, f.service)
    read, latest = 0, f.since
    while rows := await embedded.run(lambda _: cur.fetchmany(PAGE)):
        for row in rows:
            message = sqlite_replay.result(row)
            latest = max(latest, message.observed_at)
            yield message
        read += len(rows)
        if progress is not None:
            progress(read, latest)


async def alerts_from_sqlite(embedded: Embedded, f: Filter) -> list[AlertEvent]:
    events = await embedded.run(sqlite_replay.alerts, f.since, f.until)
    return [e for e in events if f.wants(e.tenant, e.service, _when(e))]


@dataclass(frozen=True, slots=True)
class Line:
    """One alert transition in the replayed timeline."""

    at: datetime
    state: str
    rule: str
    tenant: str
    service: str
    check: str
    title: str
    event_id: str
    seen: Literal["replay", "actual", "both"] = "replay"


def line(event: AlertEvent, seen: Literal["replay", "actual", "both"] = "replay") -> Line:
    return Line(
        at=_when(event),
        state=event.state,
        rule=event.rule,
        tenant=event.tenant,
        service=event.service,
        check=event.labels.get("check", ""),
        title=event.title,
        event_id=event.event_id,
        seen=seen,
    )


_SAMPLES_SQL = """
SELECT tenant, service, metric, value, labels, observed_at, event_id
FROM metric_samples WHERE observed_at >= %s AND observed_at < %s
  AND (%s::text IS NULL OR tenant = %s) AND (%s::text IS NULL OR service = %s)
ORDER BY observed_at, stream_id
"""


async def samples_from_archive(
    conn: AsyncConnection[Any], f: Filter
) -> AsyncIterator[MetricSample]:
    """The range's archived metric samples, in time order (PostgreSQL)."""
    params = (f.since, f.until, f.tenant, f.tenant, f.service, f.service)
    async with conn.cursor(name="replay_samples") as cur:  # server-side: long ranges stream
        await cur.execute(_SAMPLES_SQL, params)
        async for row in cur:
            yield MetricSample(
                tenant=row[0],
                service=row[1],
                metric=row[2],
                value=row[3],
                labels=row[4],
                observed_at=row[5],
                event_id=row[6],
            )


async def replay(
    messages: AsyncIterator[CheckResult] | AsyncIterator[MetricSample], rules: Sequence[AnyRule]
) -> list[AlertEvent]:
    engine = DryRun(rules)
    fired: list[AlertEvent] = []
    async for message in messages:
        fired += engine.feed(message)
    return fired


def compare_lines(replayed: Sequence[AlertEvent], actual: Sequence[AlertEvent]) -> list[Line]:
    """Both timelines merged; an event is matched by its deterministic id."""
    actual_ids = {e.event_id for e in actual}
    replay_ids = {e.event_id for e in replayed}
    lines = [line(e, "both" if e.event_id in actual_ids else "replay") for e in replayed]
    lines += [line(e, "actual") for e in actual if e.event_id not in replay_ids]
    return sorted(lines, key=lambda x: (x.at, x.state != "firing", x.rule))


def table(lines: Sequence[Line], with_source: bool) -> str:
    header = ["time (UTC)", "state", "rule", "tenant/service/check", "title"]
    if with_source:
        header.append("seen in")
    rows = [header]
    for x in lines:
        row = [
            x.at.strftime("%Y-%m-%d %H:%M:%S"),
            x.state,
            x.rule,
            f"{x.tenant}/{x.service}/{x.check}",
            x.title,
        ]
        if with_source:
            row.append({"both": "both", "replay": "replay only", "actual": "actual only"}[x.seen])
        rows.append(row)
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows
    )


def as_json(lines: Sequence[Line]) -> str:
    return msgspec.json.encode(list(lines)).decode()


async def results(
    redis: Redis,
    names: StreamNames,
    conn: Archive | None,
    f: Filter,
    progress: Progress | None = None,
) -> tuple[str, AsyncIterator[CheckResult]]:
    """The results to replay and where they come from ("stream" or "archive")."""
    if await stream_holds(redis, names.results, f.since) or conn is None:
        return "stream", from_stream(redis, names.results, CheckResult, f, progress)
    if isinstance(conn, Embedded):
        return "archive", results_from_sqlite(conn, f, progress)
    return "archive", results_from_archive(conn, f, progress)


async def actual_alerts(
    redis: Redis, names: StreamNames, conn: Archive | None, f: Filter
) -> list[AlertEvent]:
    """What really fired: the archive is the durable record; without one, the stream.
    Acknowledgements are people's doing, not the rules': a replay has none to match."""
    if isinstance(conn, Embedded):
        return [e for e in await alerts_from_sqlite(conn, f) if e.state != "acknowledged"]
    if conn is not None:
        found = await alerts_from_archive(conn, f)
    else:
        found = [e async for e in from_stream(redis, names.alerts, AlertEvent, f, by_arrival=False)]
    return [e for e in found if e.state != "acknowledged"]


async def run_replay(
    settings: Settings,
    f: Filter,
    rules: Sequence[AnyRule],
    *,
    compare: bool,
    output: str,
    progress: Progress | None = None,
) -> str:
    """What ``vigil replay`` prints."""
    names = StreamNames(settings.stream_prefix)
    redis = await connected(settings.redis_url)
    url = settings.database_url
    conn: Archive | None = None
    if sqlite.is_sqlite(url):
        conn = Embedded(url)
    elif url:
        conn = await AsyncConnection.connect(url)
    try:
        source, stream = await results(redis, names, conn, f, progress)
        replayed = await replay(stream, rules)
        actual = await actual_alerts(redis, names, conn, f) if compare else []
    finally:
        await redis.aclose()
        if conn is not None:
            await conn.close()
    lines = compare_lines(replayed, actual) if compare else [line(e) for e in replayed]
    if output == "json":
        return as_json(lines)
    fired = sum(x.state == "firing" and x.seen != "actual" for x in lines)
    resolved = sum(x.state == "resolved" and x.seen != "actual" for x in lines)
    summary = f"replayed from the {source}: {fired} fired, {resolved} resolved"
    if compare:
        same = sum(x.seen == "both" for x in lines)
        summary += f"; {same} as really happened, {len(lines) - same} different"
    return table(lines, compare) + "\n" + summary
