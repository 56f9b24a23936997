"""The notifier's configuration as an operator writes it in YAML."""

from __future__ import annotations

import pytest

from services.notifier.channels import CHANNELS
from shared.config import parse_config
from shared.errors import ConfigError

EVERY_CHANNEL = """\
channels:
  - {name: hook, type: webhook, url: "http://h", secret: "${HOOK_SECRET}", format: alertmanager}
  - {name: slack, type: slack, url: "http://s", channel: "#ops"}
  - name: mail
    type: email
    host: smtp.example.org
    security: starttls
    username: vigil
    password: pw
    from: vigil@example.org
    to: [ops@example.org]
  - {name: pd, type: pagerduty, routing_key: rk, rate_limit: {count: 120, per: 1m}}
  - {name: og, type: opsgenie, api_key: k, responders: [{type: team, name: ops}]}
  - {name: teams, type: teams, url: "http://t"}
  - {name: discord, type: discord, url: "http://d"}
  - {name: tg, type: telegram, bot_token: "1:A", chat_id: "-1"}
  - {name: sms, type: sms, account_sid: AC1, auth_token: t, from: "+1", to: "+2"}
  - {name: ntfy, type: ntfy, topic: ops}
  - {name: app, type: inapp}
  - {name: term, type: console}
routes:
  - match: {severity: critical}
    channels: [pd]
    continue: true
  - match: {matchers: ['region=~eu-.*'], labels: {team: web}, category: http}
    channels: [slack, app]
    group_by: [tenant]
    group_wait: 10s
    templates: {title: "{{ title }}"}
intake:
  port: 9000
  producers:
    - {name: am, tenant: acme, token: "${AM_TOKEN}"}
    - {name: ci, tenant: acme, hmac_secret: s}
"""


def test_every_channel_type_and_the_intake_parse_from_yaml() -> None:
    config = parse_config(EVERY_CHANNEL, "v.yaml", {"HOOK_SECRET": "hs", "AM_TOKEN": "at"})
    assert {c.kind for c in config.channels} == set(CHANNELS)
    assert config.channel("mail").from_ == "vigil@example.org"  # type: ignore[union-attr]
    assert config.channel("pd").rate_limit.per == 60  # type: ignore[union-attr]
    assert config.routes[1].group_wait == 10
    assert config.intake is not None and config.intake.producers[0].token == "at"


@pytest.mark.parametrize(
    "producer, reason",
    [
        ("{name: x, tenant: a}", "exactly one of token and hmac_secret"),
        ("{name: x, tenant: a, token: t, hmac_secret: s}", "exactly one of token and hmac_secret"),
        ("{name: 'bad name', tenant: a, token: t}", "matching regex"),
    ],
)
def test_bad_producers_are_config_errors(producer: str, reason: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(f"intake:\n  producers:\n    - {producer}\n", "v.yaml", {})
    assert reason in info.value.reason
    assert info.value.line == 3
