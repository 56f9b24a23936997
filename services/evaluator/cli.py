"""``vigil`` commands of the evaluator service."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """The evaluator has no commands of its own yet."""
