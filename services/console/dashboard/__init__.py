"""The server-rendered dashboard: Jinja2 templates and static files shipped in the package."""

from __future__ import annotations

from pathlib import Path

from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.static_files import create_static_files_router
from litestar.template.config import TemplateConfig
from litestar.types import ControllerRouterHandler

from services.console.dashboard.manage import router as manage
from services.console.dashboard.pages import router as pages

HERE = Path(__file__).parent
template_config = TemplateConfig(directory=HERE / "templates", engine=JinjaTemplateEngine)
route_handlers: list[ControllerRouterHandler] = [
    pages,
    manage,
    create_static_files_router("/static", directories=[HERE / "static"], include_in_schema=False),
]
