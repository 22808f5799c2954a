"""Shared click option parsers of the command-line modules."""

from __future__ import annotations

import click

_NAMES = {int: "integers like 0,100,200", float: "numbers like 0.001,0.05", str: "names like relu,tanh"}


def comma_list(kind=int):
    """A click callback that parses comma-separated values of ``kind`` (int, float or str) into
    a tuple; None stays None."""

    def parse(ctx, param, value):
        if value is None:
            return None
        try:
            items = tuple(kind(v.strip()) for v in value.split(",") if v.strip())
        except ValueError:
            raise click.BadParameter(f"expected comma-separated {_NAMES[kind]}, got {value!r}") from None
        if not items:
            raise click.BadParameter("give at least one value")
        return items

    return parse


int_list = comma_list(int)
