"""Every channel against a real local server that records what it receives."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs

import msgspec
import pytest
import pytest_asyncio
from redis.asyncio import Redis
from typer.testing import CliRunner

from schemas import AlertEvent
from services.notifier.channels import CHANNELS, SendContext
from services.notifier.channels.discord import DiscordConfig
from services.notifier.channels.inapp import InAppConfig, inapp_key
from services.notifier.channels.ntfy import NtfyConfig
from services.notifier.channels.opsgenie import OpsgenieConfig
from services.notifier.channels.pagerduty import PagerDutyConfig
from services.notifier.channels.slack import SlackConfig
from services.notifier.channels.sms import SmsConfig
from services.notifier.channels.teams import TeamsConfig
from services.notifier.channels.telegram import TelegramConfig
from services.notifier.channels.webhook import SIGNATURE_HEADER, WebhookConfig
from services.notifier.delivery import deliver
from services.notifier.templates import Templates, render
from shared.cli import app
from shared.netguard import EgressPolicy, GuardedClient, guarded_session
from shared.streams import StreamNames
from tests.support.http import HttpStub, Request

START = datetime(2026, 11, 24, 12, tzinfo=UTC)
END = datetime(2026, 11, 24, 12, 5, tzinfo=UTC)
FIRING = AlertEvent(
    fingerprint="fp1",
    rule="down",
    tenant="acme",
    service="shop",
    severity="critical",
    state="firing",
    title="shop is down",
    message="3 unhealthy results in a row",
    value=3.0,
    threshold=3.0,
    labels={"region": "eu"},
    started_at=START,
    event_id="ev1",
    runbook_url="https://runbooks.example/shop",
    recommendations=["restart the shop"],
    links={"Dashboard": "https://dash.example/shop"},
)
RESOLVED = msgspec.structs.replace(FIRING, state="resolved", ended_at=END, event_id="ev2")
TITLE = "[FIRING:critical] acme/shop: shop is down"
TEXT = (
    "3 unhealthy results in a row\n"
    "Value: 3 (threshold 3)\n"
    "- restart the shop\n"
    "Runbook: https://runbooks.example/shop\n"
    "Dashboard: https://dash.example/shop"
)
R_TITLE = "[RESOLVED] acme/shop: shop is down"
ACKED = msgspec.structs.replace(
    FIRING,
    state="acknowledged",
    event_id="ev3",
    message="Acknowledged by alice: on it",
    value=None,
    threshold=None,
    recommendations=[],
    runbook_url="",
    links={},
    acknowledged_by="alice",
    acknowledged_at=END,
)


@pytest_asyncio.fixture(loop_scope="session")
async def http() -> AsyncIterator[GuardedClient]:
    async with guarded_session(EgressPolicy()) as client:
        yield client


async def send(config: Any, ctx: SendContext, alert: AlertEvent = FIRING) -> str:
    [*_, final] = await deliver(alert, config, ctx)
    assert final.outcome == "delivered", final.error
    return final.outcome


def body(request: Request) -> Any:
    return json.loads(request.body)


def test_default_templates() -> None:
    note = render(FIRING)
    assert (note.title, note.text) == (TITLE, TEXT)
    assert '<h2 style="color: #D93F0B">' + TITLE + "</h2>" in note.html
    assert "<li>restart the shop</li>" in note.html
    assert render(RESOLVED).title == R_TITLE
    acked = render(ACKED)
    assert (acked.title, acked.text) == ("[ACKNOWLEDGED] acme/shop: shop is down", ACKED.message)
    assert '<h2 style="color: #8E8E8E">' in acked.html
    assert render(msgspec.structs.replace(FIRING, message="", value=None)).text.startswith("- ")


def test_templates_are_overridable_and_html_is_escaped() -> None:
    t = Templates(title="{{ severity|upper }} {{ title }}", text="v={{ value|num }}")
    note = render(msgspec.structs.replace(FIRING, title="<b>x</b>"), t)
    assert (note.title, note.text) == ("CRITICAL <b>x</b>", "v=3")
    assert "&lt;b&gt;x&lt;/b&gt;" in note.html
    with pytest.raises(ValueError, match="template syntax error"):
        Templates(title="{{ oops")


async def test_slack_firing_and_resolved(http: GuardedClient) -> None:
    with HttpStub() as stub:
        config = SlackConfig(name="s", url=stub.url + "/hook/T0/B0/secret", channel="#ops")
        await send(config, SendContext(http))
        await send(config, SendContext(http), RESOLVED)
    firing, resolved = (body(r) for r in stub.posts("/hook/T0/B0/secret"))
    assert firing == {
        "username": "Vigil",
        "text": TITLE,
        "channel": "#ops",
        "attachments": [
            {
                "color": "#D93F0B",
                "title": TITLE,
                "text": TEXT,
                "fallback": TITLE,
                "footer": "vigil · down",
                "ts": int(START.timestamp()),
            }
        ],
    }
    assert resolved["attachments"][0]["color"] == "#2EB886"
    assert resolved["attachments"][0]["ts"] == int(END.timestamp())
    assert resolved["text"] == R_TITLE


async def test_webhook_signature_and_alertmanager_body(http: GuardedClient) -> None:
    with HttpStub() as stub:
        plain = WebhookConfig(name="w", url=stub.url + "/plain", secret="s3cr3t-key")
        am = WebhookConfig(name="am", url=stub.url + "/am", format="alertmanager")
        await send(plain, SendContext(http))
        await send(am, SendContext(http), RESOLVED)
    [signed] = stub.posts("/plain")
    assert msgspec.json.decode(signed.body, type=AlertEvent) == FIRING
    stamp, mac = (p.split("=", 1)[1] for p in signed.headers[SIGNATURE_HEADER].split(","))
    expected = hmac.new(b"s3cr3t-key", f"{stamp}.".encode() + signed.body, hashlib.sha256)
    assert mac == expected.hexdigest()
    labels = {"region": "eu", "alertname": "down", "tenant": "acme", "service": "shop"}
    labels["severity"] = "critical"
    annotations = {
        "summary": "shop is down",
        "description": "3 unhealthy results in a row",
        "runbook_url": "https://runbooks.example/shop",
    }
    [amreq] = stub.posts("/am")
    assert SIGNATURE_HEADER not in amreq.headers
    assert body(amreq) == {
        "version": "4",
        "groupKey": "{}:{alertname='down'}",
        "truncatedAlerts": 0,
        "status": "resolved",
        "receiver": "am",
        "groupLabels": {"alertname": "down"},
        "commonLabels": labels,
        "commonAnnotations": annotations,
        "externalURL": "",
        "alerts": [
            {
                "status": "resolved",
                "labels": labels,
                "annotations": annotations,
                "startsAt": "2026-11-24T12:00:00Z",
                "endsAt": "2026-11-24T12:05:00Z",
                "generatorURL": "",
                "fingerprint": "fp1",
            }
        ],
    }


async def test_pagerduty_trigger_acknowledge_resolve_with_one_dedup_key(
    http: GuardedClient,
) -> None:
    with HttpStub(status=202) as stub:
        config = PagerDutyConfig(name="pd", routing_key="R0UTINGKEY", base_url=stub.url)
        await send(config, SendContext(http))
        await send(config, SendContext(http), ACKED)
        await send(config, SendContext(http), RESOLVED)
    trigger, ack, resolve = (body(r) for r in stub.posts("/v2/enqueue"))
    assert trigger == {
        "routing_key": "R0UTINGKEY",
        "event_action": "trigger",
        "dedup_key": "vigil:acme:fp1",
        "payload": {
            "summary": TITLE,
            "source": "vigil",
            "severity": "critical",
            "timestamp": "2026-11-24T12:00:00+00:00",
            "component": "shop",
            "group": "acme",
            "class": "down",
            "custom_details": {
                "message": "3 unhealthy results in a row",
                "region": "eu",
                "value": 3.0,
                "threshold": 3.0,
                "recommendations": ["restart the shop"],
            },
        },
        "links": [
            {"href": "https://runbooks.example/shop", "text": "Runbook"},
            {"href": "https://dash.example/shop", "text": "Dashboard"},
        ],
    }
    assert ack == {
        "routing_key": "R0UTINGKEY",
        "event_action": "acknowledge",
        "dedup_key": "vigil:acme:fp1",
    }
    assert resolve == {
        "routing_key": "R0UTINGKEY",
        "event_action": "resolve",
        "dedup_key": "vigil:acme:fp1",
    }


async def test_opsgenie_create_acknowledge_close_by_alias(http: GuardedClient) -> None:
    with HttpStub(status=202) as stub:
        config = OpsgenieConfig(name="og", api_key="genie-key-1", base_url=stub.url, tags=["t"])
        await send(config, SendContext(http))
        await send(config, SendContext(http), ACKED)
        await send(config, SendContext(http), RESOLVED)
    create, ack, close = stub.posts()
    assert create.path == "/v2/alerts"
    assert create.headers["authorization"] == "GenieKey genie-key-1"
    assert body(create) == {
        "message": TITLE,
        "alias": "vigil:acme:fp1",
        "description": TEXT,
        "priority": "P1",
        "source": "vigil",
        "entity": "shop",
        "tags": ["t", "critical"],
        "details": {
            "region": "eu",
            "tenant": "acme",
            "service": "shop",
            "runbook_url": "https://runbooks.example/shop",
        },
    }
    assert ack.path == "/v2/alerts/vigil%3Aacme%3Afp1/acknowledge?identifierType=alias"
    assert body(ack) == {"source": "vigil", "user": "alice", "note": "Acknowledged by alice: on it"}
    assert close.path == "/v2/alerts/vigil%3Aacme%3Afp1/close?identifierType=alias"
    assert body(close) == {"source": "vigil", "note": R_TITLE}


async def test_teams_adaptive_card(http: GuardedClient) -> None:
    with HttpStub(status=202) as stub:
        await send(TeamsConfig(name="t", url=stub.url + "/wf"), SendContext(http))
    [request] = stub.posts("/wf")
    [attachment] = body(request)["attachments"]
    assert body(request)["type"] == "message"
    assert attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
    card = attachment["content"]
    assert (card["type"], card["version"]) == ("AdaptiveCard", "1.4")
    assert card["body"][0] == {
        "type": "TextBlock",
        "text": TITLE,
        "weight": "Bolder",
        "size": "Medium",
        "color": "Attention",
        "wrap": True,
    }
    assert card["body"][1] == {"type": "TextBlock", "text": TEXT, "wrap": True}
    assert {"title": "Severity", "value": "critical"} in card["body"][2]["facts"]
    assert card["actions"] == [
        {"type": "Action.OpenUrl", "title": "Runbook", "url": "https://runbooks.example/shop"},
        {"type": "Action.OpenUrl", "title": "Dashboard", "url": "https://dash.example/shop"},
    ]


async def test_discord_embed(http: GuardedClient) -> None:
    with HttpStub(status=204) as stub:
        await send(DiscordConfig(name="d", url=stub.url + "/api/webhooks/1/tok"), SendContext(http))
    [request] = stub.posts("/api/webhooks/1/tok")
    assert body(request) == {
        "username": "Vigil",
        "embeds": [
            {
                "title": TITLE,
                "description": TEXT,
                "color": 0xD93F0B,
                "timestamp": "2026-11-24T12:00:00+00:00",
                "url": "https://runbooks.example/shop",
            }
        ],
    }


async def test_telegram_send_message(http: GuardedClient) -> None:
    with HttpStub() as stub:
        config = TelegramConfig(name="tg", bot_token="123:ABC", chat_id="-42", base_url=stub.url)
        await send(config, SendContext(http), msgspec.structs.replace(FIRING, title="a<b"))
    [request] = stub.posts("/bot123:ABC/sendMessage")
    assert body(request) == {
        "chat_id": "-42",
        "text": "<b>[FIRING:critical] acme/shop: a&lt;b</b>\n" + TEXT,
        "parse_mode": "HTML",
        "disable_web_page_preview": True,
    }


async def test_sms_twilio_form_with_basic_auth(http: GuardedClient) -> None:
    with HttpStub(status=201) as stub:
        config = SmsConfig(
            name="sms",
            account_sid="AC1",
            auth_token="tw-token",
            from_="+15550001",
            to="+15550002",
            base_url=stub.url,
        )
        await send(config, SendContext(http))
    [request] = stub.posts("/2010-04-01/Accounts/AC1/Messages.json")
    assert request.headers["authorization"] == "Basic " + base64.b64encode(b"AC1:tw-token").decode()
    assert parse_qs(request.body.decode()) == {
        "To": ["+15550002"],
        "From": ["+15550001"],
        "Body": [TITLE],
    }


async def test_ntfy_topic_post(http: GuardedClient) -> None:
    with HttpStub() as stub:
        config = NtfyConfig(name="n", topic="ops", base_url=stub.url, token="tk_ntfy")
        await send(config, SendContext(http))
        await send(config, SendContext(http), RESOLVED)
    firing, resolved = stub.posts("/ops")
    assert firing.body.decode() == TEXT
    assert {k: firing.headers[k] for k in ("title", "priority", "tags", "click")} == {
        "title": TITLE,
        "priority": "5",
        "tags": "rotating_light",
        "click": "https://runbooks.example/shop",
    }
    assert firing.headers["authorization"] == "Bearer tk_ntfy"
    assert (resolved.headers["priority"], resolved.headers["tags"]) == ("3", "white_check_mark")


async def test_inapp_notifications_are_stored_per_tenant(
    http: GuardedClient, redis: Redis, names: StreamNames
) -> None:
    ctx = SendContext(http, redis, names)
    await send(InAppConfig(name="app", max_items=5), ctx)
    await send(InAppConfig(name="app", max_items=5), ctx, RESOLVED)
    entries = await redis.xrevrange(inapp_key(names, "acme"))
    assert [msgspec.json.decode(f[b"data"], type=AlertEvent) for _, f in entries] == [
        RESOLVED,
        FIRING,
    ]
    assert entries[1][1][b"title"].decode() == TITLE
    assert entries[1][1][b"text"].decode() == TEXT


def test_cli_lists_every_channel_type() -> None:
    result = CliRunner().invoke(app, ["channels"])
    assert result.exit_code == 0
    # One line per type: its name, then a short description (the exact contract).
    assert result.output == (
        "console      one line per alert event on standard output (demo, debugging)\n"
        "discord      Discord webhook, one embed coloured by severity\n"
        "email        email over SMTP (STARTTLS, auth), text and HTML bodies\n"
        "inapp        in-app notifications for the dashboard, stored in Redis\n"
        "ntfy         ntfy push notification to a topic\n"
        "opsgenie     Opsgenie Alert API: create, acknowledge, close by alias\n"
        "pagerduty    PagerDuty Events API v2: trigger, acknowledge, resolve; stable dedup_key\n"
        "slack        Slack incoming webhook, coloured by severity\n"
        "sms          SMS through a Twilio-style REST API\n"
        "teams        Microsoft Teams Workflows webhook, one Adaptive Card\n"
        "telegram     Telegram bot message to one chat\n"
        "webhook      HTTP POST of the alert event as JSON (optionally HMAC-signed, "
        "Alertmanager v4 body)\n"
    )
    assert [line.split()[0] for line in result.output.splitlines()] == sorted(CHANNELS)


def test_targets_name_the_destination_without_secrets() -> None:
    assert SlackConfig(name="s", url="https://hooks.example/T/B/sekrit").target() == "hooks.example"
    hook = WebhookConfig(name="w", url="https://user:pw@api.example:8443/in?k=sekrit")
    assert hook.target() == "api.example:8443"
    assert TelegramConfig(name="t", bot_token="1:sekrit", chat_id="-42").target() == "chat -42"
    assert NtfyConfig(name="n", topic="sekrit-topic").target() == "ntfy.sh"
