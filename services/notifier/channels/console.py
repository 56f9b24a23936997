"""Console channel: one readable line per alert event on standard output."""

from __future__ import annotations

import sys
from typing import ClassVar

from services.notifier.channels.base import ChannelConfig, SendContext
from services.notifier.templates import Notification

_MARK = {
    "firing": "\033[1;31mFIRING  \033[0m",
    "acknowledged": "\033[1;33mACKED   \033[0m",
    "resolved": "\033[1;32mRESOLVED\033[0m",
}


class ConsoleConfig(ChannelConfig, frozen=True, kw_only=True, tag="console", tag_field="type"):
    color: bool = True


class ConsoleChannel:
    type: ClassVar[str] = "console"
    description: ClassVar[str] = "one line per alert event on standard output (demo, debugging)"

    async def send(self, note: Notification, config: ConsoleConfig, ctx: SendContext) -> None:
        alert = note.alert
        mark = _MARK[alert.state] if config.color else alert.state.upper().ljust(8)
        when = (alert.ended_at or alert.started_at).strftime("%H:%M:%S")
        test = "[TEST] " if note.test else ""
        line = (
            f"{when} {mark} {test}[{alert.severity}] {alert.tenant}/{alert.service}: {alert.title}"
        )
        if alert.message:
            line += f" - {alert.message}"
        print(line, file=sys.stdout, flush=True)
