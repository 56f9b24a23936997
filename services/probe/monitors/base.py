"""What every monitor type shares: its config base, its outcome and its Protocol."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

import httpx

from schemas import Status
from shared.configbase import ConfigStruct, Seconds


class CheckConfig(ConfigStruct, frozen=True, kw_only=True):
    """Fields every check has, whatever its type."""

    name: str
    tenant: str
    service: str
    tier: str = "core"
    interval: Seconds | None = None
    timeout: Seconds = Seconds(10)

    @property
    def key(self) -> str:
        return f"{self.tenant}/{self.name}"

    @property
    def kind(self) -> str:
        """The monitor type: the ``type`` tag this check was written with."""
        return str(self.__struct_config__.tag)


@dataclass(slots=True)
class Outcome:
    """What one run of a check found."""

    status: Status
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class ProbeContext:
    """Long-lived clients that monitors share inside one probe process."""

    http: httpx.AsyncClient


class Monitor(Protocol):
    """A monitor type: its name, its config Struct and how to run one check."""

    type: ClassVar[str]
    description: ClassVar[str]

    async def run(self, check: Any, ctx: ProbeContext) -> Outcome: ...
