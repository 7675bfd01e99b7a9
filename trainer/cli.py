"""Command-line verbs of this stage (registered on the main app by tfcaf.cli)."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add this stage's verbs to `app`."""
