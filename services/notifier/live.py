"""Adopt channels and routes changed through the console API while running.

The notifier reads ``self.config`` per batch, so swapping it is enough; new secrets are
added to the log redaction first. A grouped route added through the API starts the
group flusher if the file had none.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import msgspec
from redis.exceptions import RedisError

from services.notifier import redact
from services.notifier.service import Notifier
from shared import liveconfig

log = logging.getLogger(__name__)
POLL_S = 1.0


class Follower:
    def __init__(self, notifier: Notifier) -> None:
        self.notifier = notifier
        self.base = notifier.config  # the file's configuration
        self.seen = -1
        self._flusher: asyncio.Task[None] | None = None
        self._redactor: redact.RedactSecrets | None = None

    async def refresh(self) -> bool:
        """Adopt a newer published set; True when the configuration changed."""
        n = self.notifier
        generation = await liveconfig.generation(n.redis, n.names)
        if generation == self.seen:
            return False
        self.seen = generation
        live = await liveconfig.fetch(n.redis, n.names)
        if live is None:
            return False
        config = liveconfig.notifier_config(self.base, live)
        redactor = redact.install(s for channel in config.channels for s in channel.secrets())
        if self._redactor is not None:
            redact.uninstall(self._redactor)  # one filter per notifier, not one per change
        self._redactor = redactor
        n.config = config
        # The runner starts a flusher only when the file has grouped routes.
        needs_own = n.groups_in_use and not any(r.group_by for r in self.base.routes)
        if needs_own and (self._flusher is None or self._flusher.done()):
            self._flusher = asyncio.ensure_future(n.flush_forever())
        log.info("notifier: live configuration generation %d adopted", generation)
        return True

    async def follow(self, every_s: float = POLL_S) -> None:
        try:
            while True:
                try:
                    await self.refresh()
                except RedisError as exc:
                    log.warning("notifier: live configuration not read: %s", exc)
                except msgspec.ValidationError as exc:
                    log.error("notifier: live configuration refused (kept the previous): %s", exc)
                await asyncio.sleep(every_s)
                liveconfig.stop_if_cancelled()
        finally:
            if self._flusher is not None:
                self._flusher.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._flusher
