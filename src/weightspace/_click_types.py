"""Shared click option parsers of the command-line modules."""

from __future__ import annotations

import click


def int_list(ctx, param, value):
    """Parse comma-separated integers (``0,100,200``); None stays None."""
    if value is None:
        return None
    try:
        items = tuple(int(v) for v in value.split(",") if v.strip())
    except ValueError:
        raise click.BadParameter(f"expected comma-separated integers like 0,100,200, got {value!r}") from None
    if not items:
        raise click.BadParameter("give at least one number")
    return items
