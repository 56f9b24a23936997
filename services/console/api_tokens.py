"""``/api/v1/whoami`` and ``/api/v1/tokens``: who am I, and token administration."""

from __future__ import annotations

import msgspec
from litestar import Request, Router, delete, get, post
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.exceptions import NotFoundException, ValidationException
from litestar.params import FromPath, JSONBody

from services.console import tokens
from services.console.auth import Principal, Role, admin_guard
from services.console.context import ConsoleContext
from services.console.tokens import TokenInfo
from shared.errors import VigilError

AuthedRequest = Request[Principal, str, State]


class Me(msgspec.Struct, frozen=True):
    name: str
    role: Role
    tenant: str | None


class NewToken(msgspec.Struct, frozen=True):
    name: str
    role: Role = "viewer"
    tenant: str | None = None


class CreatedToken(msgspec.Struct, frozen=True):
    info: TokenInfo
    token: str  # shown this once


@get("/whoami", summary="The caller's token: name, role and tenant scope")
async def whoami(request: AuthedRequest) -> Me:
    me = request.user
    return Me(me.name, me.role, me.tenant)


@get("/tokens", guards=[admin_guard], summary="List API tokens (never the tokens themselves)")
async def list_tokens(
    request: AuthedRequest, ctx: NamedDependency[ConsoleContext]
) -> list[TokenInfo]:
    async with ctx.pool.connection() as conn:
        return await tokens.listing(conn, request.user.tenant)


@post("/tokens", guards=[admin_guard], summary="Create an API token; the token is shown once")
async def create_token(
    request: AuthedRequest, ctx: NamedDependency[ConsoleContext], data: JSONBody[NewToken]
) -> CreatedToken:
    me = request.user
    if me.tenant is not None and data.tenant != me.tenant:
        # A tenant's admin mints tokens for that tenant only.
        raise ValidationException(f"tenant must be {me.tenant!r} for this token")
    async with ctx.pool.connection() as conn:
        try:
            info, token = await tokens.create(conn, data.name, data.role, data.tenant, me.actor)
        except VigilError as exc:
            raise ValidationException(str(exc)) from exc
    return CreatedToken(info, token)


@delete("/tokens/{token_id:int}", guards=[admin_guard], summary="Revoke an API token")
async def revoke_token(
    request: AuthedRequest, ctx: NamedDependency[ConsoleContext], token_id: FromPath[int]
) -> None:
    async with ctx.pool.connection() as conn:
        visible = {t.id for t in await tokens.listing(conn, request.user.tenant)}
        if token_id not in visible or not await tokens.revoke(conn, token_id):
            raise NotFoundException(f"no active token {token_id}")


router = Router(
    "/api/v1", route_handlers=[whoami, list_tokens, create_token, revoke_token], tags=["tokens"]
)
