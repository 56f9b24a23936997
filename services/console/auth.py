"""API tokens: who is asking, with which role and which tenant scope.

A token is ``vgl_`` + 32 random bytes; only its SHA-256 is stored. Roles are ordered
(viewer < operator < admin). A tenant-scoped token sees only its tenant: anything of
another tenant answers 404, exactly as if it did not exist, so scope never leaks.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass
from typing import Any, Literal

from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException, NotFoundException, PermissionDeniedException
from litestar.handlers.base import BaseRouteHandler
from litestar.middleware import AbstractAuthenticationMiddleware, AuthenticationResult
from psycopg_pool import AsyncConnectionPool

Role = Literal["admin", "operator", "viewer"]
ROLES: tuple[Role, ...] = ("viewer", "operator", "admin")
TOKEN_PREFIX = "vgl_"
COOKIE = "vigil_token"
# A revoked token stops working within this long on every replica.
CACHE_TTL_S = 10.0


@dataclass(frozen=True, slots=True)
class Principal:
    """The bearer of a valid token."""

    token_id: int
    name: str
    role: Role
    tenant: str | None  # None: every tenant

    def at_least(self, role: Role) -> bool:
        return ROLES.index(self.role) >= ROLES.index(role)

    def sees(self, tenant: str) -> bool:
        return self.tenant is None or self.tenant == tenant

    def require_tenant(self, tenant: str) -> None:
        """404 for a tenant outside this token's scope (not 403: scope must not leak)."""
        if not self.sees(tenant):
            raise NotFoundException(f"no such tenant: {tenant}")

    @property
    def actor(self) -> str:
        """How audit rows name this principal."""
        return f"token:{self.name}"


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class TokenCache:
    """Token hash -> principal, looked up in PostgreSQL at most every CACHE_TTL_S."""

    def __init__(self, pool: AsyncConnectionPool[Any], ttl_s: float = CACHE_TTL_S) -> None:
        self._pool, self._ttl = pool, ttl_s
        self._entries: dict[str, tuple[float, Principal | None]] = {}

    async def principal(self, token: str) -> Principal | None:
        digest = token_hash(token)
        now = time.monotonic()
        cached = self._entries.get(digest)
        if cached is not None and now - cached[0] < self._ttl:
            return cached[1]
        found = await lookup(self._pool, digest)
        if len(self._entries) > 10_000:  # bounded: random bad tokens cannot grow it forever
            self._entries.clear()
        self._entries[digest] = (now, found)
        return found


async def lookup(pool: AsyncConnectionPool[Any], digest: str) -> Principal | None:
    async with pool.connection() as conn:
        row = await (
            await conn.execute(
                "UPDATE api_tokens SET last_used_at = now() "
                "WHERE token_hash = %s AND revoked_at IS NULL "
                "RETURNING id, name, role, tenant",
                (digest,),
            )
        ).fetchone()
    return None if row is None else Principal(row[0], row[1], row[2], row[3])


def bearer(connection: ASGIConnection[Any, Any, Any, Any]) -> str | None:
    """The token of a request: ``Authorization: Bearer …``, else the dashboard's cookie."""
    header = connection.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return connection.cookies.get(COOKIE) or None


class TokenAuthentication(AbstractAuthenticationMiddleware):
    """401 for a request without a valid token; the principal lands in ``request.user``."""

    async def authenticate_request(
        self, connection: ASGIConnection[Any, Any, Any, Any]
    ) -> AuthenticationResult:
        token = bearer(connection)
        if token is None:
            raise NotAuthorizedException("an API token is required")
        cache: TokenCache = connection.app.state.tokens
        principal = await cache.principal(token)
        if principal is None:
            raise NotAuthorizedException("invalid or revoked API token")
        return AuthenticationResult(user=principal, auth=token)


def _guard(role: Role) -> Any:
    def guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
        principal: Principal = connection.user
        if not principal.at_least(role):
            raise PermissionDeniedException(f"this needs the {role} role")

    return guard


operator_guard = _guard("operator")
admin_guard = _guard("admin")
