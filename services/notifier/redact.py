"""Keep channel secrets out of log lines.

Some APIs carry their credential in the URL (Slack, Discord and Teams webhooks,
Telegram's bot token) and HTTP libraries may log request URLs (httpx does at
INFO), so the notifier puts this filter on the handlers of the root logger and
on the HTTP libraries' own loggers.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

MASK = "***"
_LOGGERS = ("httpx", "httpcore", "aiohttp.client")


class RedactSecrets(logging.Filter):
    """Replaces every known secret in a record's rendered message with ``***``."""

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        # Longest first, so a secret that contains another is masked whole.
        self.secrets = sorted({s for s in secrets if len(s) >= 4}, key=len, reverse=True)

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = message
        for secret in self.secrets:
            masked = masked.replace(secret, MASK)
        if masked != message:
            record.msg, record.args = masked, None
        return True


def install(secrets: Iterable[str]) -> RedactSecrets:
    """Attach one filter to the loggers that may see secrets and to the root handlers."""
    redactor = RedactSecrets(secrets)
    for name in _LOGGERS:
        logging.getLogger(name).addFilter(redactor)
    for handler in logging.getLogger().handlers:
        handler.addFilter(redactor)
    return redactor


def uninstall(redactor: RedactSecrets) -> None:
    for name in _LOGGERS:
        logging.getLogger(name).removeFilter(redactor)
    for handler in logging.getLogger().handlers:
        handler.removeFilter(redactor)
