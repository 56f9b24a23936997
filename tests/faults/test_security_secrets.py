"""No secret leaves the places it is configured: a notifier and an archiver run as real
processes with distinctive secrets in every channel and intake credential, deliver
(mostly failing) alerts, and then everything they and the CLI left behind is scanned:
process logs, every Vigil stream and key in Redis, every PostgreSQL row, CLI output."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import psycopg
import pytest
from redis.asyncio import Redis

from services.notifier.channels.webhook import sign
from shared.streams import StreamNames
from tests.support.http import HttpStub
from tests.support.wait import wait_until

SECRETS = {
    "WEBHOOK_HMAC": "S3CRET-webhook-hmac-7f3a91",
    "WEBHOOK_URL_TOKEN": "S3CRET-urltoken-c0ffee",
    "WEBHOOK_HEADER": "S3CRET-header-bearer-5b2d",
    "SLACK_PATH": "S3CRET-slack-T000-B000-xoxo",
    "PD_ROUTING_KEY": "S3CRET-routing-9e8d7c",
    "OPSGENIE_KEY": "S3CRET-genie-4242",
    "TELEGRAM_TOKEN": "S3CRET-bot-1234-abcd",
    "TWILIO_TOKEN": "S3CRET-twilio-auth-77",
    "SMTP_PASSWORD": "S3CRET-smtp-pass-31",
    "NTFY_TOKEN": "S3CRET-ntfy-tok-88",
    "ACME_INTAKE_TOKEN": "S3CRET-intake-acme-55",
    "GLOBEX_INTAKE_HMAC": "S3CRET-intake-globex-66",
    "GLOBEX_HOOK_SECRET": "S3CRET-globex-hook-99",
}
# Read from a file (NAME_FILE), not the environment, to cover that path as well.
FROM_FILE = ("SMTP_PASSWORD", "GLOBEX_INTAKE_HMAC")
FAST = "max_attempts: 2, backoff: 10ms, timeout: 2s"

CONFIG = f"""\
tenants: [{{id: acme}}, {{id: globex}}]
channels:
  - {{name: acme-hook, type: webhook, {FAST}, secret: "${{WEBHOOK_HMAC}}",
     url: "${{OK}}/hook?token=${{WEBHOOK_URL_TOKEN}}",
     headers: {{authorization: "Bearer ${{WEBHOOK_HEADER}}"}}}}
  - {{name: acme-hook-down, type: webhook, {FAST}, secret: "${{WEBHOOK_HMAC}}",
     url: "${{FAIL}}/hook?token=${{WEBHOOK_URL_TOKEN}}"}}
  - {{name: acme-slack, type: slack, {FAST}, url: "${{FAIL}}/services/${{SLACK_PATH}}"}}
  - {{name: acme-pd, type: pagerduty, {FAST}, routing_key: "${{PD_ROUTING_KEY}}",
     base_url: "${{FAIL}}"}}
  - {{name: acme-genie, type: opsgenie, {FAST}, api_key: "${{OPSGENIE_KEY}}",
     base_url: "${{OK}}"}}
  - {{name: acme-telegram, type: telegram, {FAST}, bot_token: "${{TELEGRAM_TOKEN}}",
     chat_id: "1", base_url: "http://127.0.0.1:${{CLOSED_PORT}}"}}
  - {{name: acme-sms, type: sms, {FAST}, account_sid: AC1, auth_token: "${{TWILIO_TOKEN}}",
     from: "+100", to: "+200", base_url: "${{FAIL}}"}}
  - {{name: acme-mail, type: email, {FAST}, host: 127.0.0.1, port: "${{CLOSED_PORT}}",
     username: ops, password: "${{SMTP_PASSWORD}}", from: vigil@acme.test, to: [ops@acme.test]}}
  - {{name: acme-ntfy, type: ntfy, {FAST}, topic: alerts, token: "${{NTFY_TOKEN}}",
     base_url: "${{OK}}"}}
  - {{name: globex-hook, type: webhook, {FAST}, secret: "${{GLOBEX_HOOK_SECRET}}",
     url: "${{FAIL}}/globex"}}
routes:
  - match: {{tenant: acme}}
    channels: [acme-hook, acme-hook-down, acme-slack, acme-pd, acme-genie, acme-telegram,
               acme-sms, acme-mail, acme-ntfy]
  - match: {{tenant: globex}}
    channels: [globex-hook]
intake:
  port: "${{INTAKE_PORT}}"
  producers:
    - {{name: acme-am, tenant: acme, token: "${{ACME_INTAKE_TOKEN}}"}}
    - {{name: globex-ci, tenant: globex, hmac_secret: "${{GLOBEX_INTAKE_HMAC}}"}}
"""
PAIRS = 10  # (alert, channel) pairs: nine acme channels, one globex channel


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def vigil(*args: str) -> list[str]:
    return [sys.executable, "-c", "from shared.cli import main; main()", *args]


@dataclass
class Ran:
    returncode: int
    stdout: bytes
    stderr: bytes


async def run_cli(args: list[str], env: dict[str, str]) -> Ran:
    proc = await asyncio.create_subprocess_exec(
        *args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return Ran(proc.returncode, out, err)


@pytest.fixture
def receivers() -> Iterator[tuple[HttpStub, HttpStub]]:
    with HttpStub(status=200) as ok, HttpStub(status=500) as fail:
        yield ok, fail


def environment(
    tmp_path: Path, ok: str, fail: str, redis_url: str, prefix: str, database_url: str
) -> dict[str, str]:
    config = tmp_path / "vigil.yaml"
    config.write_text(CONFIG)
    env = {**os.environ, **{k: v for k, v in SECRETS.items() if k not in FROM_FILE}}
    for name in FROM_FILE:
        (tmp_path / name).write_text(SECRETS[name] + "\n")
        env[f"{name}_FILE"] = str(tmp_path / name)
    return env | {
        "VIGIL_CONFIG": str(config),
        "VIGIL_REDIS_URL": redis_url,
        "VIGIL_DATABASE_URL": database_url,
        "VIGIL_STREAM_PREFIX": prefix,
        "VIGIL_OPS_PORT": "0",
        "VIGIL_LOG_FORMAT": "json",
        "OK": ok,
        "FAIL": fail,
        "CLOSED_PORT": str(free_port()),
        "INTAKE_PORT": str(free_port()),
    }


def final_deliveries(database_url: str) -> int:
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "select count(*) from deliveries where outcome in ('delivered', 'failed')"
        ).fetchone()
    return int(row[0]) if row else 0


def every_row(database_url: str) -> str:
    with psycopg.connect(database_url) as conn:
        tables = conn.execute(
            "select schemaname || '.' || tablename from pg_tables"
            " where schemaname not in ('pg_catalog', 'information_schema')"
        ).fetchall()
        return "\n".join(
            str(row) for (table,) in tables for row in conn.execute(f"select * from {table}")
        )


async def everything_in_redis(redis: Redis, names: StreamNames) -> bytes:
    """Every key under the prefix, with its content whatever its type."""
    found = b""
    async for key in redis.scan_iter(match=names.key("*")):
        found += key + b"\n"
        kind = (await redis.type(key)).decode()
        if kind == "stream":
            found += json.dumps([str(f) for _, f in await redis.xrange(key)]).encode()
        elif kind == "string":
            found += await redis.get(key) or b""
        elif kind == "hash":
            found += str(await redis.hgetall(key)).encode()
        elif kind in ("set", "zset", "list"):
            found += str(await redis.dump(key)).encode()
    return found


async def post_alerts(intake: str) -> None:
    acme = {"alerts": [{"name": "disk", "service": "db", "severity": "critical"}]}
    globex = json.dumps({"alerts": [{"name": "backup", "service": "nightly"}]}).encode()
    signed = sign(SECRETS["GLOBEX_INTAKE_HMAC"], int(time.time()), globex)
    async with httpx.AsyncClient(base_url=intake) as http:

        async def up() -> bool:
            try:
                return (await http.post("/intake/nobody/generic")).status_code == 401
            except httpx.ConnectError:
                return False

        await wait_until(up, 20, "the intake")
        auth = {"authorization": f"Bearer {SECRETS['ACME_INTAKE_TOKEN']}"}
        r1 = await http.post("/intake/acme-am/generic", json=acme, headers=auth)
        r2 = await http.post(
            "/intake/globex-ci/generic", content=globex, headers={"x-vigil-signature": signed}
        )
        wrong = {"authorization": f"Bearer {SECRETS['ACME_INTAKE_TOKEN']}x"}
        r3 = await http.post("/intake/acme-am/generic", json=acme, headers=wrong)
    assert (r1.status_code, r2.status_code, r3.status_code) == (202, 202, 401)


async def test_no_secret_in_logs_streams_rows_or_cli_output(
    tmp_path: Path,
    receivers: tuple[HttpStub, HttpStub],
    redis: Redis,
    redis_server_url: str,
    stream_prefix: str,
    names: StreamNames,
    database_url: str,
) -> None:
    ok, fail = receivers
    env = environment(tmp_path, ok.url, fail.url, redis_server_url, stream_prefix, database_url)
    logs = {role: tmp_path / f"{role}.log" for role in ("notifier", "archiver")}
    procs = []
    for role, log in logs.items():
        with log.open("wb") as out:
            procs.append(
                await asyncio.create_subprocess_exec(
                    *vigil("run", role), env=env, stdout=out, stderr=subprocess.STDOUT
                )
            )
    try:
        await post_alerts(f"http://127.0.0.1:{env['INTAKE_PORT']}")
        await wait_until(
            lambda: final_deliveries(database_url) == PAIRS, 60, "a final record per channel"
        )
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        codes = [await proc.wait() for proc in procs]
    assert codes == [0, 0]

    # A secret from the environment in a field that quotes bad values: quoted as ***.
    misplaced = tmp_path / "misplaced.yaml"
    misplaced.write_text(
        'channels:\n  - {name: w, type: webhook, url: "http://h/", timeout: "${PD_ROUTING_KEY}"}\n'
    )
    cli = [
        vigil("check-config", str(misplaced)),
        vigil("check-config", env["VIGIL_CONFIG"]),
        vigil("dlq", "list"),
        vigil("test-notify", "acme-hook-down"),
        vigil("test-notify", "acme-pd"),
        vigil("test-notify", "acme-mail"),
        vigil("test-notify", "acme-telegram"),
        vigil("channels"),
    ]
    outputs = [await run_cli(c, env) for c in cli]
    cli_text = b"".join(o.stdout + o.stderr for o in outputs)

    # What was exercised: real deliveries, real failures, dead letters, CLI that ran.
    assert [o.returncode for o in outputs] == [2, 0, 0, 2, 2, 2, 2, 0], cli_text
    assert b"timeout: expected a duration" in outputs[0].stderr
    assert ok.posts("/hook") and fail.posts("/hook") and fail.posts("/globex")
    assert ok.posts("/hook")[0].headers["authorization"].endswith(SECRETS["WEBHOOK_HEADER"])
    assert await redis.xlen(names.deadletter) >= 7
    assert b"failed after 2 attempt(s)" in await everything_in_redis(redis, names)

    haystacks = {
        **{f"{role} log": log.read_bytes() for role, log in logs.items()},
        "redis": await everything_in_redis(redis, names),
        "postgresql": every_row(database_url).encode(),
        "cli output": cli_text,
    }
    leaks = [
        (name, where)
        for name, secret in SECRETS.items()
        for where, text in haystacks.items()
        if secret.encode() in text
    ]
    assert leaks == []
    assert all(haystacks.values())  # each place really had content to scan
