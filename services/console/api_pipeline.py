"""``GET /api/v1/pipeline``: the pipeline's own health (every tenant's: unscoped tokens)."""

from __future__ import annotations

from typing import Annotated

from litestar import Request, Router, get
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.exceptions import NotFoundException
from litestar.params import QueryParameter

from services.console import pipeline
from services.console.auth import Principal
from services.console.context import ConsoleContext
from services.console.pipeline import Pipeline

AuthedRequest = Request[Principal, str, State]


@get("/pipeline", summary="Stream lengths, consumer lag and pending, dead letters, reachability")
async def get_pipeline(
    request: AuthedRequest,
    ctx: NamedDependency[ConsoleContext],
    recent: Annotated[int, QueryParameter(ge=0, le=200)] = pipeline.RECENT,
) -> Pipeline:
    if request.user.tenant is not None:
        # Streams and dead letters mix every tenant's data: not a tenant's to see.
        raise NotFoundException("no such resource for a tenant's token")
    return await pipeline.health(ctx.redis, ctx.names, ctx.pool, recent)


router = Router("/api/v1", route_handlers=[get_pipeline], tags=["pipeline"])
