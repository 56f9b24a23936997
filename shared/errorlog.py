"""A ``logging.Handler`` that reports ERROR records as Vigil application errors.

    handler = VigilErrorHandler(publisher, tenant="acme", service="checkout", source="api")
    logging.getLogger().addHandler(handler)

Each record at ERROR or above becomes one ``ApplicationError`` on ``{prefix}:errors``:
``error_type`` is the exception's class name (or ``LogError`` when no exception is
attached), ``stack_trace`` the formatted traceback (or the ``stack_info``), and an
``endpoint`` given with ``extra={"endpoint": ...}`` is kept. ``emit`` only appends to the
publisher's bounded buffer, so logging never waits on Redis.
"""

from __future__ import annotations

import logging
import traceback
from datetime import UTC, datetime

from shared.publisher import Publisher

# ApplicationError's Name fields are 1..200 characters.
_NAME_MAX = 200


class VigilErrorHandler(logging.Handler):
    def __init__(
        self,
        publisher: Publisher,
        tenant: str,
        service: str,
        source: str = "",
        level: int = logging.ERROR,
    ) -> None:
        super().__init__(level)
        self.publisher, self.tenant, self.service = publisher, tenant, service
        self.source = source  # empty: the logger's name reports the error

    def emit(self, record: logging.LogRecord) -> None:
        # The publisher logs its own failures; reporting those through it would loop.
        if record.name.startswith("shared.publisher"):
            return
        try:
            self.publisher.error(
                self.tenant,
                self.service,
                _name(self.source or record.name),
                _name(_error_type(record)),
                record.getMessage(),
                stack_trace=_stack(record),
                endpoint=str(getattr(record, "endpoint", "")),
                observed_at=datetime.fromtimestamp(record.created, UTC),
            )
        except Exception:  # a bad record must not break the caller's logging
            self.handleError(record)


def _error_type(record: logging.LogRecord) -> str:
    if record.exc_info and record.exc_info[0] is not None:
        return record.exc_info[0].__name__
    return "LogError"


def _stack(record: logging.LogRecord) -> str:
    if record.exc_info and record.exc_info[0] is not None:
        return "".join(traceback.format_exception(*record.exc_info))
    return record.stack_info or ""


def _name(text: str) -> str:
    return (text or "unknown")[:_NAME_MAX]
