"""``make run``: the whole pipeline on a demo that fails on purpose, then recovers."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import stat
import tempfile
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

from services.archiver.migrate import upgrade
from shared.config import load_config
from shared.localservers import LocalPostgres, LocalRedis, LocalRedisCluster, free_port
from shared.redisclient import plain_url
from shared.runner import CONSOLE, ROLES, run
from shared.settings import Settings
from shared.streams import StreamNames

REPO = Path(__file__).resolve().parents[1]
DEMO_CONFIG = REPO / "deploy" / "demo" / "vigil.yaml"


class DemoTarget:
    """A small HTTP service: healthy, then failing for a while, then healthy again.

    It also takes webhook deliveries on ``/hooks`` and prints them.
    """

    def __init__(self, healthy_for: float = 8.0, failing_for: float = 14.0) -> None:
        self.started = time.monotonic()
        self.healthy_for, self.failing_for = healthy_for, failing_for
        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), self._handler())
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def failing(self) -> bool:
        age = time.monotonic() - self.started
        return self.healthy_for <= age < self.healthy_for + self.failing_for

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        target = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                code = 503 if target.failing() else 200
                self.send_response(code)
                self.send_header("content-length", "2")
                self.end_headers()
                self.wfile.write(b"ok" if code == 200 else b"no")

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                self.send_response(204)
                self.end_headers()
                alert = json.loads(body or b"{}")
                print(
                    f"         webhook received: {alert.get('state')} "
                    f"{alert.get('title')} (event {alert.get('event_id', '')[:8]})",
                    flush=True,
                )

            def log_message(self, format: str, *args: object) -> None:
                pass

        return Handler

    def __enter__(self) -> DemoTarget:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def _data_dir() -> Path:
    """Project-local when an unprivileged PostgreSQL can reach it, else a temp dir."""
    local = REPO / ".vigil"
    reachable = all(p.stat().st_mode & stat.S_IXOTH for p in local.parents if p.exists())
    if os.geteuid() != 0 or reachable:
        return local
    return Path(tempfile.gettempdir()) / "vigil-demo"


@contextlib.contextmanager
def _servers(env: dict[str, str], cluster: bool) -> Iterator[None]:
    with contextlib.ExitStack() as stack:
        data = _data_dir()
        if cluster and not env.get("VIGIL_REDIS_URL"):
            # A fresh directory each run: a cluster node's saved config names its old ports.
            where = Path(tempfile.mkdtemp(prefix="vigil-demo-cluster-"))
            nodes = stack.enter_context(LocalRedisCluster(where).start())
            stack.callback(shutil.rmtree, where, ignore_errors=True)
            env["VIGIL_REDIS_URL"] = nodes.url
            print(f"started a 3-master Redis Cluster {nodes.url} (data in {where})")
        elif not env.get("VIGIL_REDIS_URL"):
            redis = stack.enter_context(LocalRedis(data / "redis").start())
            env["VIGIL_REDIS_URL"] = redis.url
            print(f"started Redis {redis.url} (data in {data / 'redis'})")
        if not env.get("VIGIL_DATABASE_URL"):
            pg = stack.enter_context(LocalPostgres(data / "postgres").start())
            env["VIGIL_DATABASE_URL"] = pg.url
            print(f"started PostgreSQL {pg.url} (data in {data / 'postgres'})")
        yield


def main(cluster: bool = False) -> None:
    env = dict(os.environ)
    with _servers(env, cluster), DemoTarget() as target:
        redis_url, pg_url = urlsplit(env["VIGIL_REDIS_URL"]), urlsplit(env["VIGIL_DATABASE_URL"])
        env |= {
            "VIGIL_DEMO_TARGET_URL": target.url,
            "VIGIL_DEMO_REDIS_HOST": redis_url.hostname or "127.0.0.1",
            "VIGIL_DEMO_REDIS_PORT": str(redis_url.port or 6379),
            "VIGIL_DEMO_POSTGRES_HOST": pg_url.hostname or "127.0.0.1",
            "VIGIL_DEMO_POSTGRES_PORT": str(pg_url.port or 5432),
        }
        env.setdefault("VIGIL_OPS_PORT", str(free_port()))
        env.setdefault("VIGIL_CONSOLE_PORT", str(free_port()))
        settings = Settings.from_env(env)
        # The demo's self-watch checks read Vigil's streams with a plain client: on a
        # cluster, point them at the node serving the shared `{vigil}` slot.
        watch = {"VIGIL_REDIS_URL": _node_url(settings)} if cluster else {}
        config = load_config(settings.config_path or DEMO_CONFIG, env | watch)
        upgrade(settings.database_url)
        token = asyncio.run(_admin_token(settings.database_url))
        print(
            f"""
Vigil demo: {len(config.checks)} checks, {len(config.rules)} rules.
  The demo shop at {target.url} fails from {target.healthy_for:.0f}s to \
{target.healthy_for + target.failing_for:.0f}s.
  Expect a FIRING alert, then a RESOLVED one, within a minute.
  History: psql {settings.database_url} -c 'select * from alert_events'
  Vigil's own metrics: http://127.0.0.1:{settings.ops_port}/metrics (and /readyz, /livez)
  Dashboard: http://{settings.console_host}:{settings.console_port}/
    log in with this admin token (created just now): {token}
  Press Ctrl-C to stop everything.
""",
            flush=True,
        )
        asyncio.run(_run_until_interrupted(settings, config))
        _summary(settings.database_url)


def _node_url(settings: Settings) -> str:
    from redis.cluster import RedisCluster

    client = RedisCluster.from_url(plain_url(settings.redis_url))
    try:
        node = client.get_node_from_key(StreamNames(settings.stream_prefix).results)  # type: ignore[no-untyped-call]
        return f"redis://{node.host}:{node.port}/0"
    finally:
        client.close()


async def _run_until_interrupted(settings: Settings, config: object) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await run(settings, config, (*ROLES, CONSOLE), stop)  # type: ignore[arg-type]


async def _admin_token(database_url: str) -> str:
    from psycopg import AsyncConnection

    from services.console import tokens

    async with await AsyncConnection.connect(database_url) as conn:
        _, token = await tokens.create(conn, "demo", "admin", None, "demo")
    return token


def _summary(database_url: str) -> None:
    import psycopg

    with contextlib.suppress(psycopg.Error), psycopg.connect(database_url) as conn:
        counts = {
            t: conn.execute(f"select count(*) from {t}").fetchone()[0]  # type: ignore[index]
            for t in ("check_results", "alert_events", "deliveries")
        }
        print(f"\nstopped. History in PostgreSQL ({database_url}): {counts}")
