"""``vigil`` commands of the probe service."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    @app.command("monitors")
    def monitors() -> None:
        """List the monitor (check) types."""
        from services.probe.monitors import MONITORS

        for name, monitor in sorted(MONITORS.items()):
            typer.echo(f"{name:<12} {monitor.description}")
