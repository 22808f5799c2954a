"""The ``weightspace`` command: a thin layer over the library, one module per command group."""

from __future__ import annotations

import os
import sys

import click

from ..errors import WeightspaceError
from ..storage import DISK_ERRORS
from ..versions import weightspace_version
from . import convergence, emulation, experiments, generative, zoo


class _Group(click.Group):
    """Turns the library's input errors and click's usage errors into one clear line (exit code 2)
    instead of a traceback or a usage block."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode, **extra)
        try:
            result = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click.UsageError as error:
            where = f"{error.ctx.command_path}: " if error.ctx is not None else ""
            click.echo(f"error: {where}{error.format_message()} (see --help)", err=True)
            sys.exit(2)
        except click.ClickException as error:
            click.echo(f"error: {error.format_message()}", err=True)
            sys.exit(error.exit_code)
        except click.Abort:
            click.echo("aborted", err=True)
            sys.exit(1)
        sys.exit(result if isinstance(result, int) else 0)

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except WeightspaceError as error:
            click.echo(f"error: {error}", err=True)
            sys.exit(2)
        except OSError as error:  # a full or read-only disk outside the library's own writes
            if error.errno not in DISK_ERRORS:
                raise
            click.echo(f"error: cannot write {error.filename or 'a file'}: {os.strerror(error.errno)}", err=True)
            sys.exit(2)
        except KeyboardInterrupt:
            click.echo("\ninterrupted: rerun the same command to resume where it stopped", err=True)
            sys.exit(130)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(weightspace_version(), prog_name="weightspace")
@click.option(
    "--threads",
    type=click.IntRange(min=1),
    default=None,
    metavar="N",
    help="CPU threads for torch [default: the cores this process may use (its CPU affinity)]. "
    "Given, it also overrides an experiment family's own choice (some run best on one).",
)
@click.pass_context
def main(ctx, threads):
    """weightspace: build model zoos of small networks and learn from their weights.

    \b
    Start with:
      weightspace zoo build formal-languages --out zoos/fl --models 32 --steps 300
      weightspace zoo info zoos/fl
    """
    from .._allocator import keep_freed_memory
    from ..threads import set_threads

    keep_freed_memory()
    set_threads(threads)
    ctx.obj = {"threads": threads}


for command in (
    zoo.zoo,
    emulation.encoders,
    emulation.pretrain_command(),
    emulation.embed_command,
    emulation.fidelity_command,
    experiments.run_command,
    experiments.report_command,
    generative.generative,
    convergence.convergence,
):
    main.add_command(command)

__all__ = ["main"]
