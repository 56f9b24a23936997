"""The ``vigil`` command."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from pathlib import Path
from typing import Annotated

import typer

from shared.errors import VigilError

app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    help="Vigil: monitoring and alerting over Redis Streams.",
)
schema_app = typer.Typer(no_args_is_help=True, help="The wire contract (schemas/).")
app.add_typer(schema_app, name="schema")


def _fail(error: Exception) -> typer.Exit:
    typer.echo(f"error: {error}", err=True)
    return typer.Exit(2)


@app.command("run")
def run_cmd(
    role: Annotated[str, typer.Argument(help="probe, evaluator, notifier, archiver or all")],
) -> None:
    """Run one service (or all of them) with the config named by VIGIL_CONFIG."""
    from shared.config import load_config
    from shared.runner import ROLES, run
    from shared.settings import Settings

    roles = ROLES if role == "all" else (role,)
    if not set(roles) <= set(ROLES):
        raise _fail(ValueError(f"unknown service {role!r}; one of {', '.join(ROLES)}, all"))
    try:
        settings = Settings.from_env()
        if settings.config_path is None:
            raise VigilError("VIGIL_CONFIG is not set: it names the YAML configuration")
        config = load_config(settings.config_path)
    except VigilError as exc:
        raise _fail(exc) from None

    async def main() -> None:
        stop = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            asyncio.get_running_loop().add_signal_handler(sig, stop.set)
        await run(settings, config, roles, stop)

    try:
        asyncio.run(main())
    except VigilError as exc:
        raise _fail(exc) from None


@app.command("check-config")
def check_config(file: Path) -> None:
    """Validate a configuration file without starting anything."""
    from shared.config import load_config

    try:
        config = load_config(file)
    except VigilError as exc:
        raise _fail(exc) from None
    typer.echo(
        f"{file}: ok ({len(config.tenants)} tenants, {len(config.checks)} checks, "
        f"{len(config.rules)} rules, {len(config.channels)} channels, "
        f"{len(config.routes)} routes)"
    )


@app.command("migrate")
def migrate() -> None:
    """Apply the PostgreSQL schema migrations (VIGIL_DATABASE_URL)."""
    from services.archiver.migrate import upgrade
    from shared.settings import Settings

    try:
        settings = Settings.from_env()
    except VigilError as exc:
        raise _fail(exc) from None
    if not settings.database_url:
        raise _fail(VigilError("VIGIL_DATABASE_URL is not set"))
    upgrade(settings.database_url)
    typer.echo("database schema is up to date")


@app.command("demo")
def demo() -> None:
    """Start local Redis/PostgreSQL if needed and run the whole pipeline on a demo."""
    from shared import demo as demo_module

    try:
        demo_module.main()
    except VigilError as exc:
        raise _fail(exc) from None


@app.command("monitors")
def monitors() -> None:
    """List the monitor (check) types."""
    from services.probe.monitors import MONITORS

    for name, monitor in sorted(MONITORS.items()):
        typer.echo(f"{name:<12} {monitor.description}")


@app.command("channels")
def channels() -> None:
    """List the notification channel types."""
    from services.notifier.channels import CHANNELS

    for name, channel in sorted(CHANNELS.items()):
        typer.echo(f"{name:<12} {channel.description}")


@schema_app.command("export")
def schema_export(
    check: Annotated[bool, typer.Option("--check", help="fail if the files differ")] = False,
) -> None:
    """Write the JSON Schema of every wire message into schemas/."""
    from schemas.export import drift, export

    if check:
        if stale := drift():
            raise _fail(VigilError(f"schema files out of date: {', '.join(stale)}"))
        typer.echo("schema files are up to date")
        return
    for path in export():
        typer.echo(f"wrote {path.name}")


def main() -> None:
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
    )
    # FastStream logs every batch and task callback at INFO; keep its warnings only.
    for noisy in ("vigil.broker", "httpx", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    app()
