"""What all channels share: the status-code table, secrets kept out of sight, email over
real SMTP with STARTTLS and auth."""

from __future__ import annotations

import logging
import socket
import ssl
from collections.abc import AsyncIterator, Callable, Iterator
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import msgspec
import pytest
import pytest_asyncio
import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword
from redis.asyncio import Redis

from services.notifier import redact
from services.notifier.channels import SendContext
from services.notifier.channels.discord import DiscordConfig
from services.notifier.channels.mail import EmailConfig
from services.notifier.channels.ntfy import NtfyConfig
from services.notifier.channels.opsgenie import OpsgenieConfig
from services.notifier.channels.pagerduty import PagerDutyConfig
from services.notifier.channels.slack import SlackConfig
from services.notifier.channels.sms import SmsConfig
from services.notifier.channels.teams import TeamsConfig
from services.notifier.channels.telegram import TelegramConfig
from services.notifier.channels.webhook import WebhookConfig
from services.notifier.delivery import BACKOFF_CAP_S, deliver, pause
from services.notifier.service import GROUP, Notifier
from shared.config import Config, Route, parse_config
from shared.configbase import Seconds
from shared.errors import ChannelError, ConfigError
from shared.netguard import EgressPolicy, GuardedClient, guarded_session, retry_after
from shared.streams import StreamNames, encode, ensure_group
from tests.support.asgi import Reply, Routes, serve
from tests.support.http import HttpStub
from tests.test_channels import FIRING, TEXT, TITLE

FAST: dict[str, Any] = {"max_attempts": 2, "backoff": Seconds(0.001)}

# One factory per HTTP channel type, pointed at the recorder, each with a secret.
HTTP_CHANNELS: dict[str, Callable[[str], Any]] = {
    "webhook": lambda u: WebhookConfig(name="webhook", url=u + "/w", secret="SECRET-hmac", **FAST),
    "slack": lambda u: SlackConfig(name="slack", url=u + "/SECRET-slack", **FAST),
    "pagerduty": lambda u: PagerDutyConfig(
        name="pagerduty", routing_key="SECRET-routing", base_url=u, **FAST
    ),
    "opsgenie": lambda u: OpsgenieConfig(
        name="opsgenie", api_key="SECRET-genie", base_url=u, **FAST
    ),
    "teams": lambda u: TeamsConfig(name="teams", url=u + "/SECRET-teams", **FAST),
    "discord": lambda u: DiscordConfig(name="discord", url=u + "/SECRET-discord", **FAST),
    "telegram": lambda u: TelegramConfig(
        name="telegram", bot_token="SECRET-bot", chat_id="1", base_url=u, **FAST
    ),
    "sms": lambda u: SmsConfig(
        name="sms",
        account_sid="AC1",
        auth_token="SECRET-twilio",
        from_="+1",
        to="+2",
        base_url=u,
        **FAST,
    ),
    "ntfy": lambda u: NtfyConfig(name="ntfy", topic="t", base_url=u, token="SECRET-ntfy", **FAST),
}
SECRETS = [
    "SECRET-hmac",
    "SECRET-slack",
    "SECRET-routing",
    "SECRET-genie",
    "SECRET-teams",
    "SECRET-discord",
    "SECRET-bot",
    "SECRET-twilio",
    "SECRET-ntfy",
]

# The shared table: status code -> (retried?, final outcome).
STATUS_TABLE = [
    (200, "delivered"),
    (202, "delivered"),
    (204, "delivered"),
    (400, "permanent"),
    (401, "permanent"),
    (403, "permanent"),
    (404, "permanent"),
    (408, "retry"),
    (409, "permanent"),
    (422, "permanent"),
    (425, "retry"),
    (429, "retry"),
    (500, "retry"),
    (501, "retry"),
    (502, "retry"),
    (503, "retry"),
    (504, "retry"),
]


@pytest_asyncio.fixture(loop_scope="session")
async def http() -> AsyncIterator[GuardedClient]:
    async with guarded_session(EgressPolicy()) as client:
        yield client


@pytest.mark.parametrize("code, expect", STATUS_TABLE)
async def test_status_code_table(http: GuardedClient, code: int, expect: str) -> None:
    wanted = {
        "delivered": [("delivered", code)],
        "permanent": [("failed", code)],
        "retry": [("retrying", code), ("failed", code)],
    }[expect]
    with HttpStub(status=code) as stub:
        for kind, make in HTTP_CHANNELS.items():
            records = await deliver(FIRING, make(stub.url), SendContext(http))
            assert [(r.outcome, r.status_code) for r in records] == wanted, kind
    assert len(stub.requests) == len(wanted) * len(HTTP_CHANNELS)


async def test_a_retry_waits_as_long_as_retry_after_asks(http: GuardedClient) -> None:
    webhook = WebhookConfig(name="w", url="", **FAST)
    with HttpStub(script=[429, 200], retry_after="1") as stub:
        webhook = msgspec.structs.replace(webhook, url=stub.url + "/w")
        records = await deliver(FIRING, webhook, SendContext(http))
    assert [(r.outcome, r.status_code) for r in records] == [("retrying", 429), ("delivered", 200)]
    first, second = stub.requests
    assert second.at - first.at >= 0.95  # not the back-off's few milliseconds


def test_retry_after_is_read_in_both_forms_and_capped() -> None:
    assert retry_after("7") == 7.0
    assert retry_after("Wed, 21 Oct 2015 07:28:10 GMT", now=1445412480.0) == 10.0
    assert retry_after("Wed, 21 Oct 2015 07:28:10 GMT", now=1445412500.0) == 0.0  # past
    assert retry_after("soon") is None and retry_after(None) is None
    asked = ChannelError("HTTP 429", permanent=False, retry_after=3600)
    assert pause(0.01, 1, asked) == BACKOFF_CAP_S  # a receiver cannot park an alert
    assert pause(0.01, 1, ChannelError("HTTP 500", permanent=False)) < 0.1


async def test_no_secret_in_logs_records_errors_or_dead_letters(
    http: GuardedClient,
    redis: Redis,
    names: StreamNames,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    with HttpStub(status=500) as stub:
        failing = [make(stub.url) for make in HTTP_CHANNELS.values()]
        unreachable = [make("http://127.0.0.1:9") for make in HTTP_CHANNELS.values()]
        unreachable = [msgspec.structs.replace(c, name=c.name + "-down") for c in unreachable]
        channels = [*failing, *unreachable]
        config = Config(channels=channels, routes=[Route(channels=[c.name for c in channels])])
        notifier = Notifier(config, redis, names, SendContext(http, redis, names))
        assert all(any(s in held for held in notifier.secrets()) for s in SECRETS)
        redactor = redact.install(notifier.secrets())
        try:
            await ensure_group(redis, names.alerts, GROUP)
            await redis.xadd(names.alerts, encode(FIRING))
            [[_, entries]] = await redis.xreadgroup(GROUP, "w", {names.alerts: ">"})
            pipe = redis.pipeline()
            await notifier.handle([(i, FIRING) for i, _ in entries], pipe)
            await pipe.execute()
            # A library logging a URL that carries a token (as httpx does) is masked.
            logging.getLogger("some.library").info("POST %s", failing[1].url)
        finally:
            redact.uninstall(redactor)
    assert len(stub.requests) == 2 * len(failing)
    stored = b""
    for stream in (names.deliveries, names.deadletter):
        stored += b"".join(b"".join(f.values()) for _, f in await redis.xrange(stream))
    assert stored.count(b"failed after 2 attempt(s)") == len(channels)
    assert "***" in caplog.text
    for secret in SECRETS:
        assert secret not in caplog.text
        assert secret.encode() not in stored


# ---- email over a real SMTP server (aiosmtpd) with STARTTLS and AUTH ----


class Recorder:
    def __init__(self) -> None:
        self.messages: list[Envelope] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Envelope) -> str:
        self.messages.append(envelope)
        return "250 OK"


def _authenticate(
    server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
) -> AuthResult:
    ok = isinstance(auth_data, LoginPassword) and (
        (auth_data.login, auth_data.password) == (b"vigil", b"SECRET-smtp")
    )
    return AuthResult(success=ok, handled=False)  # handled=False: the server answers 535


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def smtp(tmp_path: Path) -> Iterator[tuple[Recorder, int, str]]:
    ca = trustme.CA()
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_ctx)
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    recorder, port = Recorder(), _free_port()
    controller = Controller(
        recorder,
        hostname="127.0.0.1",
        port=port,
        tls_context=server_ctx,
        require_starttls=True,
        authenticator=_authenticate,
        auth_require_tls=True,
    )
    controller.start()
    yield recorder, port, str(ca_file)
    controller.stop()


def mail_config(port: int, ca_file: str, password: str = "SECRET-smtp") -> EmailConfig:
    return EmailConfig(
        name="mail",
        host="127.0.0.1",
        port=port,
        username="vigil",
        password=password,
        from_="vigil@example.org",
        to=["ops@example.org", "oncall@example.org"],
        ca_file=ca_file,
        **FAST,
    )


async def test_email_over_starttls_with_auth(
    http: GuardedClient, smtp: tuple[Recorder, int, str]
) -> None:
    recorder, port, ca_file = smtp
    [record] = await deliver(FIRING, mail_config(port, ca_file), SendContext(http))
    assert (record.outcome, record.error) == ("delivered", "")
    [envelope] = recorder.messages
    assert envelope.mail_from == "vigil@example.org"
    assert envelope.rcpt_tos == ["ops@example.org", "oncall@example.org"]
    assert isinstance(envelope.content, bytes)
    msg = message_from_bytes(envelope.content, policy=policy.default)
    assert isinstance(msg, EmailMessage)
    assert msg["Subject"] == TITLE
    assert msg["X-Vigil-Event-Id"] == "ev1"
    text = msg.get_body(("plain",))
    html = msg.get_body(("html",))
    assert text is not None and html is not None
    assert text.get_content().replace("\r\n", "\n").strip() == TEXT
    assert '<a href="https://runbooks.example/shop">Runbook</a>' in html.get_content()


async def test_email_bad_password_is_permanent_and_not_leaked(
    http: GuardedClient, smtp: tuple[Recorder, int, str]
) -> None:
    recorder, port, ca_file = smtp
    records = await deliver(FIRING, mail_config(port, ca_file, "SECRET-wrong"), SendContext(http))
    assert [(r.outcome, r.status_code) for r in records] == [("failed", 535)]
    assert "SECRET-wrong" not in msgspec.json.encode(records).decode()
    assert recorder.messages == []


async def test_tls_certificates_are_verified(http: GuardedClient, tmp_path: Path) -> None:
    # A certificate no trusted CA signed: the send fails before any request is made.
    cert = trustme.CA().issue_cert("127.0.0.1")
    cert.cert_chain_pems[0].write_to_path(tmp_path / "cert.pem")
    cert.private_key_pem.write_to_path(tmp_path / "key.pem")
    routes = Routes({"/w": Reply(200)})
    ssl_files = {
        "ssl_certfile": str(tmp_path / "cert.pem"),
        "ssl_keyfile": str(tmp_path / "key.pem"),
    }
    async with serve(routes, **ssl_files) as url:
        records = await deliver(
            FIRING, WebhookConfig(name="w", url=url + "/w", **FAST), SendContext(http)
        )
    assert [(r.outcome, r.error) for r in records] == [
        ("retrying", "transport: ConnectError"),
        ("failed", "transport: ConnectError"),
    ]
    assert routes.requests == []


async def test_https_to_a_server_signed_by_the_configured_ca(tmp_path: Path) -> None:
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    cert.cert_chain_pems[0].write_to_path(tmp_path / "cert.pem")
    cert.private_key_pem.write_to_path(tmp_path / "key.pem")
    ca.cert_pem.write_to_path(tmp_path / "ca.pem")
    routes = Routes({"/w": Reply(200)})
    ssl_files = {
        "ssl_certfile": str(tmp_path / "cert.pem"),
        "ssl_keyfile": str(tmp_path / "key.pem"),
    }
    policy = EgressPolicy(ca_file=str(tmp_path / "ca.pem"))
    async with serve(routes, **ssl_files) as url, guarded_session(policy) as http:
        assert url.startswith("https://")
        records = await deliver(
            FIRING, WebhookConfig(name="w", url=url + "/w", **FAST), SendContext(http)
        )
    assert [(r.outcome, r.status_code) for r in records] == [("delivered", 200)]
    assert len(routes.requests) == 1


def test_an_unreadable_ca_file_is_refused_at_start(tmp_path: Path) -> None:
    (tmp_path / "empty.pem").write_text("no certificate here\n")
    text = f"egress:\n  ca_file: {tmp_path / 'missing.pem'}\n"
    with pytest.raises(ConfigError, match=r"vigil.yaml:2.*ca_file: cannot read"):
        parse_config(text, "vigil.yaml", {})
    with pytest.raises(ConfigError, match=r"ca_file: no PEM certificate"):
        parse_config(f"egress: {{ca_file: {tmp_path / 'empty.pem'}}}\n", "vigil.yaml", {})
