"""``vigil`` commands of the archiver service."""

from __future__ import annotations

import typer

from shared.errors import VigilError


def register(app: typer.Typer) -> None:
    @app.command("migrate")
    def migrate() -> None:
        """Apply the PostgreSQL schema migrations (VIGIL_DATABASE_URL)."""
        from services.archiver.migrate import upgrade
        from shared.settings import Settings

        settings = Settings.from_env()
        if not settings.database_url:
            raise VigilError("VIGIL_DATABASE_URL is not set")
        upgrade(settings.database_url)
        typer.echo("database schema is up to date")
