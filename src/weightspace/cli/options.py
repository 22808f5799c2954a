"""What the commands share: options generated from config dataclasses, the device check and the
executor options."""

from __future__ import annotations

import click

from .._click_types import comma_list


def device_option(ctx, param, value):
    import torch

    if value.startswith("cuda") and not torch.cuda.is_available():
        raise click.BadParameter("CUDA is not available on this machine; use --device cpu")
    return value


def config_options(cls, exclude=()) -> list[click.Option]:
    """One option per field of config dataclass ``cls``, help from its metadata and the default
    shown from the dataclass (the one source of defaults: an option not given stays None and the
    dataclass fills it in). Booleans are ``--x/--no-x`` flags; tuples are comma-separated values
    of their items' type."""
    import dataclasses
    import types
    import typing

    hints = typing.get_type_hints(cls)
    options = []
    for f in dataclasses.fields(cls):
        if f.name in exclude:
            continue
        flag = f.metadata.get("flag", "--" + f.name.replace("_", "-"))
        hint = hints[f.name]
        optional = typing.get_origin(hint) in (typing.Union, types.UnionType)
        args = [a for a in typing.get_args(hint) if a is not type(None)] if optional else []
        base = args[0] if args else hint
        help_text = f.metadata.get("help", "") + ("" if f.default is None else f" [default: {f.default}]")
        if base is bool:
            options.append(click.Option([f"{flag}/--no-{flag[2:]}", f.name], default=None, help=help_text))
        elif typing.get_origin(base) is tuple:
            kind = typing.get_args(base)[0]
            metavar = {int: "0,100,...", float: "LOW,HIGH"}.get(kind, "A,B,...")
            options.append(click.Option([flag, f.name], callback=comma_list(kind), metavar=metavar, help=help_text))
        else:
            options.append(click.Option([flag, f.name], type=base, default=None, help=help_text))
    return options


def given_values(values: dict) -> dict:
    """The options the user gave (the others are None and take the dataclass defaults)."""
    return {name: value for name, value in values.items() if value is not None}


def executor_options(what: str) -> list[click.Option]:
    return [
        click.Option(
            ["--executor"],
            type=click.Choice(["local", "ray"]),
            default="local",
            show_default=True,
            help=f"local: in this process, one after another; ray: {what} "
            "(pip install 'weightspace[ray]'; docs/cluster.md).",
        ),
        click.Option(
            ["--address"],
            default=None,
            metavar="ADDR",
            help="Ray cluster to join (with --executor ray; default: start a local Ray instance).",
        ),
    ]


def make_executor(name: str, address: str | None):
    """The executor the options ask for: None (local) or a RayExecutor."""
    if address is not None and name != "ray":
        raise click.UsageError("--address needs --executor ray")
    if name != "ray":
        return None
    from ..experiments.ray_executor import RayExecutor

    return RayExecutor(address=address)
