"""``POST /api/v1/channels/{name}/test``: send a test notification through the real
delivery path; the delivery records go to the deliveries stream and are returned."""

from __future__ import annotations

from datetime import UTC, datetime

from litestar import Request, Router, post
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.exceptions import NotFoundException
from litestar.params import FromPath

from schemas import DeliveryRecord
from services.console import store
from services.console.auth import Principal, admin_guard
from services.console.context import ConsoleContext
from services.console.objects import from_config
from services.notifier.channels import AnyChannelConfig, SendContext
from services.notifier.clitasks import test_alert
from services.notifier.delivery import deliver
from services.notifier.ratelimit import Limiters
from shared import netguard
from shared.streams import encode

AuthedRequest = Request[Principal, str, State]


async def channel(ctx: ConsoleContext, name: str, me: Principal) -> AnyChannelConfig:
    """The channel as notifiers use it (secrets included): the API's, else the file's."""
    async with ctx.pool.connection() as conn:
        try:
            stored = await store.get(conn, "channel", name, me.tenant)
        except store.Missing:
            stored = None
    if stored is not None and stored.enabled:
        found: AnyChannelConfig = store.parse("channel", name, stored.body)
        return found
    from_file = from_config("channel", ctx.config).get(name)
    if stored is None and from_file is not None and me.tenant is None:
        return from_file  # type: ignore[no-any-return]
    raise NotFoundException(f"no channel {name!r}")


@post(
    "/channels/{name:str}/test",
    guards=[admin_guard],
    status_code=200,
    summary="Send a test notification to a channel; returns the delivery records",
)
async def send_test(
    request: AuthedRequest, ctx: NamedDependency[ConsoleContext], name: FromPath[str]
) -> list[DeliveryRecord]:
    config = await channel(ctx, name, request.user)
    alert = test_alert(datetime.now(UTC))
    # The notifier's own guard: a tenant's channel cannot aim a test at link-local or
    # metadata addresses either; and a test counts against the shared rate limit.
    async with netguard.guarded_session(ctx.config.egress) as http:
        records = await deliver(
            alert,
            config,
            SendContext(http, ctx.redis, ctx.names),
            limiters=Limiters(ctx.redis, ctx.names),
            test=True,
        )
    pipe = ctx.redis.pipeline(transaction=False)
    for record in records:
        pipe.xadd(ctx.names.deliveries, encode(record))
    await pipe.execute()
    return records


router = Router("/api/v1", route_handlers=[send_test], tags=["channels"])
