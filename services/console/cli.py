"""``vigil token create|list|revoke``: API tokens of the console."""

from __future__ import annotations

import asyncio
import getpass
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypeVar

import typer

from shared.errors import VigilError

T = TypeVar("T")

token_app = typer.Typer(no_args_is_help=True, help="API tokens of the console and its API.")


def _with_conn(work: Callable[[Any], Awaitable[T]]) -> T:
    """Run ``work`` with a connection to VIGIL_DATABASE_URL (tokens live in PostgreSQL)."""
    from psycopg import AsyncConnection

    from shared.settings import Settings

    url = Settings.from_env().database_url
    if not url.startswith(("postgres://", "postgresql://")):
        raise VigilError("API tokens need VIGIL_DATABASE_URL to name a PostgreSQL database")

    async def main() -> T:
        async with await AsyncConnection.connect(url) as conn:
            return await work(conn)

    return asyncio.run(main())


@token_app.command("create")
def create(
    name: Annotated[str, typer.Option(help="what the token is for, e.g. 'alice' or 'ci'")],
    role: Annotated[str, typer.Option(help="admin, operator or viewer")] = "admin",
    tenant: Annotated[str | None, typer.Option(help="limit the token to one tenant")] = None,
) -> None:
    """Create a token and print it. It is shown this once: only its hash is stored."""
    from services.console import tokens

    creator = f"cli:{getpass.getuser()}"
    info, token = _with_conn(lambda conn: tokens.create(conn, name, role, tenant, creator))
    scope = f"tenant {info.tenant}" if info.tenant else "every tenant"
    typer.echo(f"token {info.id} ({info.name}, {info.role}, {scope}):", err=True)
    typer.echo(token)


@token_app.command("list")
def list_tokens() -> None:
    """List tokens (never the tokens themselves)."""
    from services.console import tokens

    for info in _with_conn(tokens.listing):
        state = "revoked" if info.revoked_at else "active"
        used = info.last_used_at.isoformat(timespec="seconds") if info.last_used_at else "never"
        typer.echo(
            f"{info.id}\t{info.name}\t{info.role}\t{info.tenant or '*'}\t{state}\tused {used}"
        )


@token_app.command("revoke")
def revoke(token_id: int) -> None:
    """Revoke a token; every replica refuses it within seconds."""
    from services.console import tokens

    if not _with_conn(lambda conn: tokens.revoke(conn, token_id)):
        raise VigilError(f"no active token {token_id}")
    typer.echo(f"token {token_id} revoked")


def register(app: typer.Typer) -> None:
    app.add_typer(token_app, name="token")
