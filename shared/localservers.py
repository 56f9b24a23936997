"""Start Redis and PostgreSQL from the machine's own binaries, on loopback.

Used by ``make run`` (when no URLs are given) and by the tests (when no Docker
engine is reachable). Data lives in the directory given; servers stop with
``stop()`` or when the context manager exits.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from shared.errors import VigilError

POSTGRES_DB = "vigil"
POSTGRES_USER = "vigil"


class ServerError(VigilError):
    """A local server could not be started."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_for_port(
    port: int, proc: subprocess.Popen[bytes], what: str, log: Path, timeout: float = 30.0
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise ServerError(f"{what} exited ({proc.returncode}): {log.read_text()[-2000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise ServerError(f"{what} did not listen on port {port} within {timeout:.0f}s")


class _Server:
    """A child server process in its own session: Ctrl-C reaches Vigil, which stops it."""

    proc: subprocess.Popen[bytes] | None = None

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.stop()


class LocalRedis(_Server):
    def __init__(
        self, directory: Path, port: int | None = None, *, aof: bool = True, cluster: bool = False
    ) -> None:
        self.directory, self.port, self.aof = directory, port or free_port(), aof
        # The cluster bus defaults to port + 10000, which may be taken or too high.
        self.bus_port = free_port() if cluster else None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> LocalRedis:
        binary = shutil.which("redis-server")
        if binary is None:
            raise ServerError("redis-server not found: apt-get install redis-server")
        self.directory.mkdir(parents=True, exist_ok=True)
        log = self.directory / "redis.log"
        self.proc = subprocess.Popen(
            [
                binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(self.directory),
                "--save",
                "",
                "--appendonly",
                "yes" if self.aof else "no",
                "--logfile",
                str(log),
                *(
                    ["--cluster-enabled", "yes", "--cluster-port", str(self.bus_port)]
                    if self.bus_port
                    else []
                ),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        log.touch()
        _wait_for_port(self.port, self.proc, "redis-server", log)
        return self


class LocalRedisCluster:
    """A Redis Cluster of ``masters`` nodes (no replicas) on loopback, slots split evenly.

    Built with the cluster commands themselves (what ``redis-cli --cluster create``
    sends), so only ``redis-server`` is needed.
    """

    SLOTS = 16384

    def __init__(self, directory: Path, masters: int = 3) -> None:
        self.nodes = [
            LocalRedis(directory / f"node{i}", aof=False, cluster=True) for i in range(masters)
        ]

    @property
    def url(self) -> str:
        return f"redis+cluster://127.0.0.1:{self.nodes[0].port}"

    def start(self, timeout: float = 30.0) -> LocalRedisCluster:
        from redis import Redis

        try:
            for node in self.nodes:
                node.start()
            clients: list[Any] = [Redis("127.0.0.1", node.port) for node in self.nodes]
            step = -(-self.SLOTS // len(clients))
            for i, client in enumerate(clients):
                # Distinct epochs spare the nodes an election before the cluster is ok.
                client.execute_command("CLUSTER SET-CONFIG-EPOCH", i + 1)
                last = min((i + 1) * step, self.SLOTS) - 1
                client.execute_command("CLUSTER ADDSLOTSRANGE", i * step, last)
            for node in self.nodes[1:]:
                clients[0].execute_command("CLUSTER MEET", "127.0.0.1", node.port, node.bus_port)
            self._wait_ok(clients, timeout)
        except BaseException:
            self.stop()
            raise
        return self

    @staticmethod
    def _wait_ok(clients: list[Any], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            # redis-py parses the reply into a dict of strings.
            if all(c.cluster("INFO").get("cluster_state") == "ok" for c in clients):
                return
            time.sleep(0.05)
        raise ServerError(f"the local Redis Cluster was not ok within {timeout:.0f}s")

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.stop()


def postgres_bin(name: str) -> str:
    """A PostgreSQL server binary: Debian keeps them off PATH, by major version."""
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)
    found = shutil.which(name) or (candidates[0] if candidates else None)
    if found is None:
        raise ServerError(f"{name} not found: apt-get install postgresql")
    return found


class LocalPostgres(_Server):
    def __init__(self, directory: Path, port: int | None = None) -> None:
        self.directory, self.port = directory, port or free_port()
        # PostgreSQL refuses to run as root; run it as an unprivileged account.
        self.user = None if os.geteuid() != 0 else _unprivileged_user()

    @property
    def url(self) -> str:
        return f"postgresql://{POSTGRES_USER}@127.0.0.1:{self.port}/{POSTGRES_DB}"

    def start(self) -> LocalPostgres:
        data = self.directory / "data"
        self.directory.mkdir(parents=True, exist_ok=True)
        if self.user:
            shutil.chown(self.directory, self.user)
        log = self.directory / "postgres.log"
        if not (data / "PG_VERSION").exists():
            subprocess.run(
                [
                    postgres_bin("initdb"),
                    "-D",
                    str(data),
                    "-U",
                    POSTGRES_USER,
                    "--auth=trust",
                    "--encoding=UTF8",
                    "--no-sync",
                ],
                check=True,
                user=self.user,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )
        with open(log, "ab") as out:
            self.proc = subprocess.Popen(
                [
                    postgres_bin("postgres"),
                    "-D",
                    str(data),
                    "-p",
                    str(self.port),
                    "-c",
                    "listen_addresses=127.0.0.1",
                    "-c",
                    f"unix_socket_directories={data}",
                    "-c",
                    "fsync=off",
                    "-c",
                    "synchronous_commit=off",
                    "-c",
                    "full_page_writes=off",
                ],
                user=self.user,
                stdout=out,
                stderr=out,
                start_new_session=True,
            )
        _wait_for_port(self.port, self.proc, "postgres", log)
        self._create_database()
        return self

    def _create_database(self) -> None:
        import psycopg

        admin = f"postgresql://{POSTGRES_USER}@127.0.0.1:{self.port}/postgres"
        deadline = time.monotonic() + 30
        while True:
            try:
                with psycopg.connect(admin, autocommit=True) as conn:
                    exists = conn.execute(
                        "SELECT 1 FROM pg_database WHERE datname = %s", (POSTGRES_DB,)
                    ).fetchone()
                    if not exists:
                        conn.execute(f"CREATE DATABASE {POSTGRES_DB}")
                    return
            except psycopg.OperationalError:  # still starting up
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)


def _unprivileged_user() -> str:
    for name in ("postgres", "nobody"):
        try:
            pwd.getpwnam(name)
            return name
        except KeyError:
            continue
    raise ServerError("running as root and no 'postgres' or 'nobody' account exists")
