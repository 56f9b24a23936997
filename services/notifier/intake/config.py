"""Configuration of the intake endpoint: where it listens and who may post."""

from __future__ import annotations

from typing import Annotated

import msgspec

from schemas import Severity
from shared.configbase import ConfigStruct


class Producer(ConfigStruct, frozen=True, kw_only=True):
    """One outside system allowed to post alerts, with its own credential.

    ``token``: the request carries ``Authorization: Bearer <token>``.
    ``hmac_secret``: the request carries ``x-vigil-signature: t=<unix>,v1=<hex>``,
    hex = HMAC-SHA256(secret, "<t>." + body), within ``max_skew`` seconds.
    ``tenant``: the producer's tenant; its alerts are for it unless they name another of
    ``tenants`` (a ``tenant`` label or field). An alert for any other tenant is refused.
    """

    name: Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_.-]+$")]
    tenant: str
    token: str | None = None
    hmac_secret: str | None = None
    default_severity: Severity = "warning"
    tenants: list[str] = []  # further tenants this producer may post for

    def secrets(self) -> list[str]:
        return [v for v in (self.token, self.hmac_secret) if v]

    def __post_init__(self) -> None:
        if (self.token is None) == (self.hmac_secret is None):
            raise ValueError("token: set exactly one of token and hmac_secret")


class IntakeConfig(ConfigStruct, frozen=True, kw_only=True):
    host: str = "127.0.0.1"
    port: Annotated[int, msgspec.Meta(ge=0, le=65535)] = 8089
    max_skew: int = 300  # seconds an HMAC timestamp may differ from our clock
    max_body: int = 1_048_576
    producers: list[Producer] = []
