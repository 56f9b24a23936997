"""The notifier as ``vigil run notifier`` wires it: intake -> stream -> grouping -> webhook."""

from __future__ import annotations

import asyncio
import socket

import httpx
import msgspec

from schemas import AlertEvent
from services.notifier.channels.webhook import WebhookConfig
from services.notifier.intake.config import IntakeConfig, Producer
from shared.config import Config, Route
from shared.configbase import Seconds
from shared.runner import run
from shared.settings import Settings
from tests.support.http import HttpStub
from tests.support.wait import wait_until


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_intake_alerts_are_grouped_into_one_webhook_message(settings: Settings) -> None:
    port = _free_port()
    alerts = {
        "alerts": [{"name": "down", "service": f"svc{i}", "severity": "critical"} for i in range(3)]
    }
    with HttpStub() as receiver:
        config = Config(
            channels=[WebhookConfig(name="ops", url=receiver.url + "/hook")],
            routes=[
                Route(
                    channels=["ops"],
                    group_by=["tenant"],
                    group_wait=Seconds(0.3),
                    group_interval=Seconds(60),
                )
            ],
            intake=IntakeConfig(
                port=port, producers=[Producer(name="ci", tenant="acme", token="tok-123456")]
            ),
        )
        stop = asyncio.Event()
        pipeline = asyncio.create_task(run(settings, config, ["notifier"], stop))
        try:
            async with httpx.AsyncClient() as http:

                async def posted() -> bool:
                    try:
                        r = await http.post(
                            f"http://127.0.0.1:{port}/intake/ci/generic",
                            json=alerts,
                            headers={"authorization": "Bearer tok-123456"},
                        )
                    except httpx.ConnectError:
                        return False
                    return r.status_code == 202

                await wait_until(posted, what="the intake endpoint")
            await wait_until(lambda: len(receiver.posts("/hook")) >= 1, what="the group message")
        finally:
            stop.set()
            await asyncio.wait_for(pipeline, 15)
    [message] = receiver.posts("/hook")
    event = msgspec.json.decode(message.body, type=AlertEvent)
    assert (event.title, event.tenant, event.source) == (
        "3 firing: tenant=acme",
        "acme",
        "vigil-group",
    )
