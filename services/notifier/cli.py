"""``vigil`` commands of the notifier service."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    @app.command("channels")
    def channels() -> None:
        """List the notification channel types."""
        from services.notifier.channels import CHANNELS

        for name, channel in sorted(CHANNELS.items()):
            typer.echo(f"{name:<12} {channel.description}")
