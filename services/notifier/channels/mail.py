"""Email over SMTP (STARTTLS or TLS, optional auth): a text and an HTML part from templates."""

from __future__ import annotations

import ssl
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from typing import ClassVar, Literal

import aiosmtplib
import msgspec

from services.notifier.channels.base import ChannelConfig, SendContext
from services.notifier.templates import Notification
from shared.errors import ChannelError


class EmailConfig(ChannelConfig, frozen=True, kw_only=True, tag="email", tag_field="type"):
    secret_fields: ClassVar[tuple[str, ...]] = ("password",)

    host: str
    port: int = 587
    security: Literal["starttls", "tls", "none"] = "starttls"
    username: str | None = None
    password: str | None = None
    from_: str = msgspec.field(name="from")
    to: list[str]
    ca_file: str | None = None  # extra CA bundle to trust (a private relay)

    def target(self) -> str:
        return ", ".join(self.to)


def email_message(note: Notification, config: EmailConfig) -> EmailMessage:
    alert = note.alert
    msg = EmailMessage()
    msg["Subject"] = note.title
    msg["From"] = config.from_
    msg["To"] = ", ".join(config.to)
    msg["Date"] = format_datetime(alert.ended_at or alert.started_at)
    msg["Message-ID"] = make_msgid(idstring=alert.event_id, domain="vigil")
    msg["X-Vigil-Event-Id"] = alert.event_id
    msg.set_content(note.text or note.title)
    msg.add_alternative(note.html, subtype="html")
    return msg


def _tls_context(config: EmailConfig) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=config.ca_file)


class EmailChannel:
    type: ClassVar[str] = "email"
    description: ClassVar[str] = "email over SMTP (STARTTLS, auth), text and HTML bodies"

    async def send(self, note: Notification, config: EmailConfig, ctx: SendContext) -> None:
        tls = config.security != "none"
        try:
            await aiosmtplib.send(
                email_message(note, config),
                hostname=config.host,
                port=config.port,
                username=config.username,
                password=config.password,
                use_tls=config.security == "tls",
                start_tls=config.security == "starttls",
                tls_context=_tls_context(config) if tls else None,
                timeout=config.timeout,
            )
        except aiosmtplib.SMTPResponseException as exc:
            # 4yz replies are transient by definition (RFC 5321), 5yz are not.
            permanent = exc.code >= 500
            raise ChannelError(
                f"SMTP {exc.code}", permanent=permanent, status_code=exc.code
            ) from exc
        except aiosmtplib.SMTPTimeoutError as exc:
            raise ChannelError("timeout: SMTP", permanent=False) from exc
        except (aiosmtplib.SMTPException, OSError) as exc:
            raise ChannelError(f"transport: {type(exc).__name__}", permanent=False) from exc
