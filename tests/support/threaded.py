"""A real uvicorn server for an app that needs async Redis, on its own thread and event loop,
so synchronous test clients (hypothesis, schemathesis) can call it from the test thread."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn
from redis.asyncio import Redis

from tests.support.wait import wait_until

AppFactory = Callable[[Redis], Any]


@contextmanager
def serve_in_thread(make_app: AppFactory, redis_url: str) -> Iterator[str]:
    """Serve ``make_app(redis)`` on loopback; yields the base URL; stops on exit."""
    sock = socket.create_server(("127.0.0.1", 0))
    started = threading.Event()
    box: dict[str, Any] = {}

    async def run() -> None:
        async with Redis.from_url(redis_url) as redis:
            config = uvicorn.Config(make_app(redis), lifespan="off", log_level="error")
            server = box["server"] = uvicorn.Server(config)
            task = asyncio.create_task(server.serve(sockets=[sock]))
            await wait_until(lambda: server.started or task.done(), 10, "uvicorn to start")
            started.set()
            await task

    thread = threading.Thread(target=asyncio.run, args=(run(),), daemon=True)
    thread.start()
    if not started.wait(10):
        raise TimeoutError("the threaded server did not start within 10 s")
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        box["server"].should_exit = True
        thread.join(10)
        sock.close()
