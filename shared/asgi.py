"""Serve a small ASGI app with uvicorn inside a service's own event loop.

The runner owns SIGINT/SIGTERM and stops services by cancelling them; ``serve``
turns that cancellation into uvicorn's orderly shutdown, which closes the
listening sockets through asyncio (a listener closed any other way stays
registered with the event loop and hijacks the next socket that reuses its
descriptor number).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Generator
from typing import Any

import uvicorn


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield  # the runner owns the signals


def bind(host: str, port: int) -> socket.socket:
    """A listening socket: a port in use fails here, at start-up; ``0`` takes a free port."""
    sock = socket.create_server((host, port))
    # create_server leaves proto 0, so asyncio does not set TCP_NODELAY on accepted
    # connections; a response written in two parts then waits ~40 ms for the peer's
    # delayed ACK on every keep-alive request. Accepted sockets inherit this option.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


async def serve(app: Any, sock: socket.socket) -> None:
    """Serve ``app`` on ``sock`` until cancelled, then shut down cleanly."""
    # loop="none": the running loop is ours; uvicorn must not install its own policy.
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off", loop="none")
    server = _Server(config)
    task = asyncio.ensure_future(server.serve(sockets=[sock]))
    try:
        await asyncio.shield(task)
    except asyncio.CancelledError:
        server.should_exit = True
        await task
        raise
    finally:
        sock.close()
