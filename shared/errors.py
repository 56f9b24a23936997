"""One rooted exception tree for Vigil."""

from __future__ import annotations


class VigilError(Exception):
    """Base class of every error Vigil raises on purpose."""


class SettingsError(VigilError):
    """An environment setting is missing or malformed."""


class ConfigError(VigilError):
    """The YAML configuration is invalid; says which file, line and field."""

    def __init__(self, file: str, line: int | None, field: str, reason: str) -> None:
        self.file, self.line, self.field, self.reason = file, line, field, reason
        where = f"{file}:{line}" if line else file
        super().__init__(f"{where}: {field}: {reason}" if field else f"{where}: {reason}")


class ChannelError(VigilError):
    """A notification could not be delivered; ``permanent`` says not to retry."""

    def __init__(
        self,
        reason: str,
        *,
        permanent: bool,
        status_code: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        """``retry_after``: seconds the receiver asked us to wait (its ``Retry-After``)."""
        self.reason, self.permanent, self.status_code = reason, permanent, status_code
        self.retry_after = retry_after
        super().__init__(reason)


class AlertActionError(VigilError):
    """An alert lifecycle action is impossible: unknown alert, or its state forbids it."""
