"""``vigil`` commands of the notifier service."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Annotated

import typer

from shared.errors import VigilError

dlq_app = typer.Typer(no_args_is_help=True, help="Dead-lettered alert events.")


def register(app: typer.Typer) -> None:
    app.add_typer(dlq_app, name="dlq")

    @app.command("channels")
    def channels() -> None:
        """List the notification channel types."""
        from services.notifier.channels import CHANNELS

        for name, channel in sorted(CHANNELS.items()):
            typer.echo(f"{name:<12} {channel.description}")

    @app.command("test-notify")
    def test_notify(channel: Annotated[str, typer.Argument(help="a channel name")]) -> None:
        """Send a test alert to one configured channel through the real delivery path."""
        from services.notifier.clitasks import send_test

        records = asyncio.run(send_test(channel))
        for r in records:
            code = r.status_code if r.status_code is not None else "-"
            typer.echo(f"attempt {r.attempt}: {r.outcome} {code} {r.latency_ms:.0f}ms {r.error}")
        if records[-1].outcome != "delivered":
            raise VigilError(f"test notification to {channel!r} failed: {records[-1].error}")


@dlq_app.command("list")
def dlq_list(limit: Annotated[int, typer.Option(help="at most this many")] = 100) -> None:
    """List dead-lettered alert events: id, time, channel, reason."""
    from services.notifier.clitasks import list_dead

    for d in asyncio.run(list_dead(limit)):
        when = datetime.fromtimestamp(d.at_ms / 1000, UTC).isoformat(timespec="seconds")
        typer.echo(f"{d.id}  {when}  {d.channel or '-'}  {d.reason}")


@dlq_app.command("retry")
def dlq_retry(
    ids: Annotated[list[str] | None, typer.Argument(help="dead-letter ids")] = None,
    all_: Annotated[bool, typer.Option("--all", help="re-drive every dead alert")] = False,
) -> None:
    """Put dead-lettered alert events back on the alerts stream."""
    from services.notifier.clitasks import retry_dead

    if not ids and not all_:
        raise VigilError("name dead-letter ids, or pass --all")
    done = asyncio.run(retry_dead(None if all_ else list(ids or [])))
    typer.echo(f"re-drove {len(done)} alert event(s)")
