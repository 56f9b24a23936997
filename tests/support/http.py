"""A real HTTP server on loopback that answers as told and records what it receives."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType


class Server(ThreadingHTTPServer):
    """A threaded test server with a real backlog: the default of 5 drops the SYNs of a
    notifier that opens dozens of connections at once, and the retransmission a second
    later looks like a slow target (a timeout, then a duplicate send)."""

    request_queue_size = 256


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    at: float = field(default_factory=time.monotonic)  # when it arrived
    answer: str = ""  # the status code it got, or "hang" / "close"


@dataclass
class HttpStub:
    """Answers every request with ``status`` (or the next of ``script``) after ``delay``.

    ``modes`` answers a path otherwise: a status code (``"500"``), ``"hang"`` (no answer
    until the client gives up or the stub stops) or ``"close"`` (hang up unanswered).
    """

    status: int = 200
    delay: float = 0.0
    script: list[int] = field(default_factory=list)
    requests: list[Request] = field(default_factory=list)
    modes: dict[str, str] = field(default_factory=dict)
    retry_after: str = "0"  # the Retry-After of a 429

    def __post_init__(self) -> None:
        self.lock = threading.Lock()
        self.released = threading.Event()  # ends every hang at shutdown
        self.server = Server(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _answer(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                headers = {k.lower(): v for k, v in self.headers.items()}
                with stub.lock:
                    mode = stub.modes.get(self.path) or str(
                        stub.script.pop(0) if stub.script else stub.status
                    )
                    stub.requests.append(
                        Request(self.command, self.path, headers, body, answer=mode)
                    )
                if mode == "hang":
                    stub.released.wait(60)
                    self.close_connection = True
                    return
                if mode == "close":
                    with contextlib.suppress(OSError):
                        self.connection.shutdown(socket.SHUT_RDWR)
                    self.close_connection = True
                    return
                if stub.delay:
                    time.sleep(stub.delay)
                code = int(mode)
                try:
                    # 204 and 304 have no body: one would corrupt the kept-alive connection.
                    reply = b"" if code in (204, 304) else b"ok"
                    self.send_response(code)
                    if code == 429:
                        self.send_header("retry-after", stub.retry_after)
                    self.send_header("content-length", str(len(reply)))
                    self.end_headers()
                    self.wfile.write(reply)
                except OSError:
                    pass  # the client gave up (a timeout test): nothing to answer

            do_GET = do_POST = do_PUT = _answer

            def handle(self) -> None:
                # A keep-alive client hanging up is normal at the end of a test.
                with contextlib.suppress(ConnectionError):
                    super().handle()

            def log_message(self, format: str, *args: object) -> None:
                pass

        return Handler

    def posts(self, path: str = "") -> list[Request]:
        with self.lock:
            return [r for r in self.requests if r.method == "POST" and r.path.startswith(path)]

    def __enter__(self) -> HttpStub:
        self.thread.start()
        return self

    def __exit__(self, *_: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.released.set()
        self.server.shutdown()
        self.server.server_close()
