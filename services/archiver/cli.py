"""``vigil`` commands of the archiver: migrate, prune, alerts, replay."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Annotated, TypeVar, cast

import typer

from shared.errors import VigilError
from shared.redisclient import connected

if TYPE_CHECKING:
    from services.archiver.history import History

T = TypeVar("T")
alerts_app = typer.Typer(no_args_is_help=True, help="Alert lifecycle: ack, resolve, suppress.")


def parse_time(text: str, now: datetime) -> datetime:
    """An RFC 3339 time (UTC if no offset), or a duration from now like ``2h``."""
    from shared.configbase import parse_duration

    try:
        return now + timedelta(seconds=parse_duration(text))
    except ValueError:
        pass
    try:
        at = datetime.fromisoformat(text)
    except ValueError as exc:
        raise VigilError(f"not a time or a duration: {text!r}") from exc
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def _database_url() -> str:
    from shared.settings import Settings

    url = Settings.from_env().database_url
    if not url:
        raise VigilError("VIGIL_DATABASE_URL is not set")
    return url


def _with_history(work: Callable[[History], Awaitable[T]]) -> T:
    """Run ``work`` on the history VIGIL_DATABASE_URL names (PostgreSQL or SQLite)."""
    from services.archiver.history import open_history

    async def main() -> T:
        async with open_history(_database_url()) as history:
            return await work(history)

    return asyncio.run(main())


def _alert_action(to: str, alert_id: int, by: str, note: str, until: str | None = None) -> None:

    from services.archiver import lifecycle
    from shared.settings import Settings
    from shared.streams import StreamNames

    now = datetime.now(UTC)
    end = parse_time(until, now) if until else None
    settings = Settings.from_env()

    async def work(history: History) -> lifecycle.Alert:
        # An acknowledgement also goes to the alerts stream, for the notifier's channels.
        redis = await connected(settings.redis_url)
        try:
            publish = lifecycle.stream_publisher(redis, StreamNames(settings.stream_prefix))
            return await history.act(
                alert_id, to, by=by, note=note, now=now, until=end, publish=publish
            )
        finally:
            await redis.aclose()

    alert = _with_history(work)
    extra = f" until {alert.suppressed_until:%Y-%m-%d %H:%M}Z" if alert.suppressed_until else ""
    typer.echo(f"alert {alert.id} ({alert.title}) is {alert.state}{extra}")


By = Annotated[str, typer.Option("--by", help="who acts (recorded in the audit log)")]
Note = Annotated[str, typer.Option("--note", help="why")]


@alerts_app.command("ack")
def ack(alert_id: int, by: By, note: Note = "") -> None:
    """Acknowledge an alert."""
    _alert_action("acknowledged", alert_id, by, note)


@alerts_app.command("resolve")
def resolve(alert_id: int, by: By, note: Note = "") -> None:
    """Resolve an alert by hand."""
    _alert_action("resolved", alert_id, by, note)


@alerts_app.command("suppress")
def suppress(
    alert_id: int,
    by: By,
    until: Annotated[str, typer.Option("--until", help="a time, or a duration like 2h")],
    note: Note = "",
) -> None:
    """Suppress an alert until a time."""
    _alert_action("suppressed", alert_id, by, note, until)


def register(app: typer.Typer) -> None:
    app.add_typer(alerts_app, name="alerts")
    register_replay(app)
    register_uptime(app)

    @app.command("migrate")
    def migrate() -> None:
        """Bring the history schema up to date (VIGIL_DATABASE_URL: PostgreSQL or SQLite)."""
        from services.archiver import sqlite
        from services.archiver.migrate import upgrade

        url = _database_url()
        if sqlite.is_sqlite(url):
            sqlite.connect(url).close()  # connecting upgrades the schema
        else:
            upgrade(url)
        typer.echo("database schema is up to date")

    @app.command("prune")
    def prune(
        dry_run: Annotated[bool, typer.Option("--dry-run", help="only show what would go")] = False,
    ) -> None:
        """Apply retention now: drop expired partitions and rows, trim the streams."""

        from services.archiver.service import Archiver
        from shared.config import load_config
        from shared.settings import Settings
        from shared.streams import StreamNames

        settings = Settings.from_env()
        archive = load_config(settings.config_path).archive if settings.config_path else None

        async def main() -> None:
            redis = await connected(settings.redis_url)
            archiver = Archiver(
                _database_url(),
                StreamNames(settings.stream_prefix),
                archive,
                settings.retention_days,
                redis=redis,
            )
            try:
                plan, trims = await archiver.housekeep(dry_run=dry_run)
            finally:
                await redis.aclose()
            verb = "would" if dry_run else "did"
            for line in plan.lines() or ["nothing to prune in the history"]:
                typer.echo(f"{verb}: {line}")
            for t in trims:
                typer.echo(f"{verb}: trim {t.entries} entries of {t.stream} before {t.minid}")

        asyncio.run(main())


def register_replay(app: typer.Typer) -> None:
    @app.command("replay")
    def replay_cmd(
        since: Annotated[str, typer.Option("--from", help="start time (RFC 3339, UTC default)")],
        until: Annotated[str, typer.Option("--to", help="end time (exclusive)")],
        tenant: Annotated[str | None, typer.Option("--tenant")] = None,
        service: Annotated[str | None, typer.Option("--service")] = None,
        rules: Annotated[
            str | None,
            typer.Option("--rules", help="a YAML file with a rules: section to try instead"),
        ] = None,
        output: Annotated[str, typer.Option("--format", help="table or json")] = "table",
    ) -> None:
        """Re-run check results of a time range through the rules (dry run) and print
        what fired and resolved; with --rules, compared with what really fired."""
        from services.archiver.replay import Filter, run_replay
        from shared.config import load_config
        from shared.settings import Settings

        if output not in ("table", "json"):
            raise VigilError("--format is table or json")
        settings = Settings.from_env()
        now = datetime.now(UTC)
        f = Filter(parse_time(since, now), parse_time(until, now), tenant, service)
        if rules is not None:
            rule_set = load_config(rules).rules
        elif settings.config_path is not None:
            rule_set = load_config(settings.config_path).rules
        else:
            raise VigilError("no rules: set VIGIL_CONFIG or pass --rules FILE")

        def progress(n: int, at: datetime) -> None:
            # stderr: the table or JSON on stdout stays clean for pipes
            done, upto = f"{100 * f.done(at):.0f}%", at.astimezone(UTC)
            typer.echo(
                f"replay: {n:,} results read, up to {upto:%Y-%m-%d %H:%M:%S}Z ({done})", err=True
            )

        text = asyncio.run(
            run_replay(
                settings, f, rule_set, compare=rules is not None, output=output, progress=progress
            )
        )
        typer.echo(text)


def register_uptime(app: typer.Typer) -> None:
    @app.command("uptime")
    def uptime_cmd(
        window: Annotated[str, typer.Option("--window", help="24h, 7d or 30d")] = "24h",
        level: Annotated[str, typer.Option("--level", help="check, service or tenant")] = "service",
        tenant: Annotated[str | None, typer.Option("--tenant")] = None,
        target: Annotated[float, typer.Option("--target", help="SLA target, %")] = 99.9,
    ) -> None:
        """Uptime and error budget left, from the hourly and daily rollups."""
        from services.archiver import queries
        from services.archiver.patterns import sla

        if window not in queries.WINDOWS or level not in ("check", "service", "tenant"):
            raise VigilError("--window is 24h, 7d or 30d; --level is check, service or tenant")
        span, by = queries.WINDOWS[window], cast(queries.Level, level)
        rows = _with_history(lambda h: h.uptime(by, span, datetime.now(UTC), tenant=tenant))
        typer.echo(f"{'series':<40} {'uptime':>9} {'SLA':>5} {'budget left':>12}")
        for u in rows:
            name = "/".join(p for p in (u.tenant, u.service, u.check) if p)
            s = sla(u.successes, u.failures, target)
            up = "-" if s.uptime_percent is None else f"{s.uptime_percent:.3f}%"
            left = (
                "-" if s.budget_remaining_percent is None else f"{s.budget_remaining_percent:.1f}%"
            )
            typer.echo(f"{name:<40} {up:>9} {'met' if s.met else 'MISS':>5} {left:>12}")
