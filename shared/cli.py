"""The ``vigil`` command. Each service registers its own commands (``services/*/cli.py``).

Commands raise ``VigilError`` for anything the operator must fix; ``main`` prints it
as ``error: …`` and exits with status 2.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Protocol

import typer

from shared.errors import VigilError

if TYPE_CHECKING:
    from shared.publisher import Publisher


class Generated(Protocol):
    """A module that renders a generated docs file (``configschema``, ``configref``)."""

    def rendered(self) -> bytes | str: ...
    def drifted(self) -> bool: ...
    def write(self) -> Path: ...


app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    help="Vigil: monitoring and alerting over Redis Streams.",
)
schema_app = typer.Typer(no_args_is_help=True, help="The wire contract (schemas/).")
app.add_typer(schema_app, name="schema")
config_app = typer.Typer(no_args_is_help=True, help="The YAML configuration.")
app.add_typer(config_app, name="config")
publish_app = typer.Typer(no_args_is_help=True, help="Put events onto Vigil's streams.")
app.add_typer(publish_app, name="publish")


@app.command("run")
def run_cmd(
    role: Annotated[
        str, typer.Argument(help="probe, evaluator, notifier, archiver, console or all")
    ],
) -> None:
    """Run one service (or all of them) with the config named by VIGIL_CONFIG."""
    from shared import logs
    from shared.config import load_config
    from shared.runner import CONSOLE, ROLES, run, run_loop
    from shared.settings import Settings

    roles = ROLES if role == "all" else (role,)
    if not set(roles) <= {*ROLES, CONSOLE}:
        raise VigilError(f"unknown service {role!r}; one of {', '.join(ROLES)}, {CONSOLE}, all")
    settings = Settings.from_env()
    logs.configure(settings.log_format, service=role)
    if settings.config_path is None:
        raise VigilError("VIGIL_CONFIG is not set: it names the YAML configuration")
    config = load_config(settings.config_path)

    async def serve() -> None:
        stop = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            asyncio.get_running_loop().add_signal_handler(sig, stop.set)
        await run(settings, config, roles, stop)

    run_loop(serve())


@app.command("check-config")
def check_config(file: Path) -> None:
    """Validate a configuration file without starting anything."""
    from shared.config import load_config

    config = load_config(file)
    typer.echo(
        f"{file}: ok ({len(config.tenants)} tenants, {len(config.checks)} checks, "
        f"{len(config.rules)} rules, {len(config.channels)} channels, "
        f"{len(config.routes)} routes)"
    )


@app.command("demo")
def demo(
    cluster: Annotated[
        bool, typer.Option("--cluster", help="on a local 3-master Redis Cluster")
    ] = False,
) -> None:
    """Start local Redis/PostgreSQL if needed and run the whole pipeline on a demo."""
    from shared import demo as demo_module

    demo_module.main(cluster)


@schema_app.command("export")
def schema_export(
    check: Annotated[bool, typer.Option("--check", help="fail if the files differ")] = False,
) -> None:
    """Write the JSON Schema of every wire message into schemas/."""
    from schemas.export import drift, export

    if check:
        if stale := drift():
            raise VigilError(f"schema files out of date: {', '.join(stale)}")
        typer.echo("schema files are up to date")
        return
    for path in export():
        typer.echo(f"wrote {path.name}")


@config_app.command("schema")
def config_schema(
    check: Annotated[bool, typer.Option("--check", help="fail if the file differs")] = False,
    stdout: Annotated[bool, typer.Option("--stdout", help="print instead of writing")] = False,
) -> None:
    """Write the configuration's JSON Schema to docs/config.schema.json."""
    from shared import configschema

    _generated(configschema, configschema.SCHEMA_FILE, "schema", check=check, stdout=stdout)


@config_app.command("reference")
def config_reference(
    check: Annotated[bool, typer.Option("--check", help="fail if the file differs")] = False,
    stdout: Annotated[bool, typer.Option("--stdout", help="print instead of writing")] = False,
) -> None:
    """Write the Markdown configuration reference to docs/config-reference.md."""
    from shared import configref

    _generated(configref, configref.REFERENCE_FILE, "reference", check=check, stdout=stdout)


def _generated(module: Generated, file: Path, command: str, *, check: bool, stdout: bool) -> None:
    """A generated docs file: print it, check it for drift, or write it."""
    if stdout:
        text = module.rendered()
        sys.stdout.buffer.write(text if isinstance(text, bytes) else text.encode())
    elif check:
        if module.drifted():
            raise VigilError(f"{file.name} is out of date: run `vigil config {command}`")
        typer.echo(f"{file.name} is up to date")
    else:
        typer.echo(f"wrote {module.write()}")


def _labels(pairs: list[str]) -> dict[str, str]:
    labels = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise VigilError(f"label {pair!r} is not KEY=VALUE")
        labels[key] = value
    return labels


@publish_app.command("metric")
def publish_metric(
    tenant: str,
    service: str,
    metric: str,
    value: float,
    label: Annotated[list[str], typer.Option("--label", "-l", help="KEY=VALUE")] = [],  # noqa: B006
) -> None:
    """Publish one metric sample (VIGIL_REDIS_URL, VIGIL_STREAM_PREFIX)."""
    from shared.publisher import Publisher
    from shared.settings import Settings

    settings = Settings.from_env()
    labels = _labels(label)

    publisher = Publisher.connect(settings.redis_url, settings.stream_prefix)
    publisher.metric(tenant, service, metric, value, labels)
    asyncio.run(_flush_one(publisher, settings.redis_url))
    typer.echo(f"published {metric}={value:g} for {tenant}/{service}")


@publish_app.command("error")
def publish_error(
    tenant: str,
    service: str,
    source: Annotated[str, typer.Argument(help="the reporting component, e.g. billing-worker")],
    error_type: Annotated[str, typer.Argument(help="e.g. DatabaseError")],
    message: str,
    stack_trace: Annotated[
        str, typer.Option("--stack-trace", help="the trace text; '-' reads it from stdin")
    ] = "",
    endpoint: Annotated[str, typer.Option("--endpoint")] = "",
    affected_users: Annotated[int, typer.Option("--affected-users", min=0)] = 0,
    count: Annotated[int, typer.Option("--count", min=1, help="occurrences it stands for")] = 1,
) -> None:
    """Publish one application error (VIGIL_REDIS_URL, VIGIL_STREAM_PREFIX)."""
    from shared.publisher import Publisher
    from shared.settings import Settings

    settings = Settings.from_env()
    trace = sys.stdin.read() if stack_trace == "-" else stack_trace
    publisher = Publisher.connect(settings.redis_url, settings.stream_prefix)
    publisher.error(
        tenant,
        service,
        source,
        error_type,
        message,
        stack_trace=trace,
        endpoint=endpoint,
        affected_users=affected_users,
        error_count=count,
    )
    asyncio.run(_flush_one(publisher, settings.redis_url))
    typer.echo(f"published {error_type} from {source} for {tenant}/{service}")


async def _flush_one(publisher: Publisher, redis_url: str) -> None:
    from redis.exceptions import RedisError

    from shared.redisclient import ready

    try:
        await ready(publisher.redis)
        if await publisher.flush() != 1:
            raise VigilError(f"could not publish to {redis_url}")
    except RedisError as exc:
        raise VigilError(f"could not publish to {redis_url}: {exc}") from exc
    finally:
        await publisher.redis.aclose()


def _register_services() -> None:
    # Each service owns its commands; this is the one place that gathers them.
    from services.archiver import cli as archiver_cli
    from services.console import cli as console_cli
    from services.evaluator import cli as evaluator_cli
    from services.notifier import cli as notifier_cli
    from services.probe import cli as probe_cli

    for module in (probe_cli, evaluator_cli, notifier_cli, archiver_cli, console_cli):
        module.register(app)


_register_services()


def main() -> None:
    from shared import logs

    logs.configure("console", service="vigil")
    try:
        app()
    except VigilError as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(2)
