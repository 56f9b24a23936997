"""Acknowledgements of one archiver stream, sent in order while the next batch is read.

With a consumer's ``submit`` set to ``InOrder.submit`` the consumer reads one batch ahead
(``BatchProcessor.read_ahead``): a batch's rows are committed to the history by the
handler, then its XACK (and dead letters) go out here, after the previous batch's, while
the next batch is read, decoded and written. At most one acknowledgement is in flight.
"""

from __future__ import annotations

import asyncio
import logging

from redis.asyncio.client import Pipeline

from shared.consumer import AfterCommit

log = logging.getLogger(__name__)


class InOrder:
    """One stream's chain of acknowledgement transactions."""

    def __init__(self, stream: str) -> None:
        self.stream = stream
        self._tail: asyncio.Task[None] | None = None  # the last transaction submitted

    async def submit(self, pipe: Pipeline, after: AfterCommit) -> asyncio.Task[None]:
        """Queue ``pipe`` after the earlier transactions; return its task once the one
        before it has settled."""
        previous = self._tail
        task = self._tail = asyncio.create_task(self._commit(previous, pipe, after))
        task.add_done_callback(self._log_failure)
        if previous is not None:
            await asyncio.wait([previous])
        return task

    async def _commit(
        self, previous: asyncio.Task[None] | None, pipe: Pipeline, after: AfterCommit
    ) -> None:
        if previous is not None:
            await asyncio.wait([previous])
        # A failure (Redis away) leaves the batch pending: it is reclaimed and rewritten,
        # which the history's key makes harmless. Later batches need not wait for that.
        await pipe.execute()
        after()

    async def settle(self) -> None:
        """Wait until the transactions in flight have settled (on stop)."""
        if (tail := self._tail) is not None:
            await asyncio.wait([tail])

    def _log_failure(self, task: asyncio.Task[None]) -> None:
        # Logged only: a batch handled without ``ahead`` also counts it in its metrics.
        if not task.cancelled() and (exc := task.exception()) is not None:
            log.warning("%s: a batch was written but not acknowledged: %s", self.stream, exc)
