"""Instrumentation for other Python services, built on ``Publisher``.

- ``VigilMiddleware``: an ASGI middleware emitting one ``api.request`` metric per
  request (value: duration in ms; labels: method, route, status).
- ``job``: a context manager (and decorator) emitting ``job.completed`` (value:
  duration in ms; labels: job, outcome = success | failure).
"""

from __future__ import annotations

import contextlib
import functools
import time
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from typing import Any, ParamSpec, TypeVar

from shared.publisher import Publisher

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
P = ParamSpec("P")
R = TypeVar("R")


class VigilMiddleware:
    def __init__(self, app: ASGIApp, publisher: Publisher, tenant: str, service: str) -> None:
        self.app, self.publisher, self.tenant, self.service = app, publisher, tenant, service

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500  # an app that raises before answering counts as a server error
        started = time.perf_counter()

        async def send_and_watch(message: MutableMapping[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_and_watch)
        finally:
            route = scope.get("route")
            self.publisher.metric(
                self.tenant,
                self.service,
                "api.request",
                (time.perf_counter() - started) * 1000,
                {
                    "method": scope.get("method", ""),
                    "route": getattr(route, "path", None) or scope.get("path", ""),
                    "status": str(status),
                },
            )


@contextlib.contextmanager
def job(publisher: Publisher, tenant: str, service: str, name: str) -> Iterator[None]:
    """Time a unit of work; an exception marks it failed and still propagates."""
    started, outcome = time.perf_counter(), "failure"
    try:
        yield
        outcome = "success"
    finally:
        publisher.metric(
            tenant,
            service,
            "job.completed",
            (time.perf_counter() - started) * 1000,
            {"job": name, "outcome": outcome},
        )


def timed_job(
    publisher: Publisher,
    tenant: str,
    service: str,
    name: str,
) -> Callable[[Callable[P, Awaitable[R]]], Callable[P, Awaitable[R]]]:
    """Decorator form of ``job`` for async functions."""

    def decorate(func: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
        @functools.wraps(func)
        async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            with job(publisher, tenant, service, name):
                return await func(*args, **kwargs)

        return wrapper

    return decorate
