"""The ``weightspace`` command: a thin layer over the library."""

from __future__ import annotations

import sys

import click

from . import __version__
from .errors import WeightspaceError


class _Group(click.Group):
    """Turns the library's input errors into one clear line instead of a traceback."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except WeightspaceError as error:
            click.echo(f"error: {error}", err=True)
            sys.exit(2)
        except KeyboardInterrupt:
            click.echo("\ninterrupted: rerun the same command to resume where it stopped", err=True)
            sys.exit(130)


def _parse_checkpoints(ctx, param, value):
    if value is None:
        return None
    try:
        steps = tuple(int(v) for v in value.split(",") if v.strip())
    except ValueError:
        raise click.BadParameter(f"expected comma-separated integers like 0,100,200, got {value!r}") from None
    if not steps:
        raise click.BadParameter("give at least one step")
    return steps


def _device(ctx, param, value):
    import torch

    if value.startswith("cuda") and not torch.cuda.is_available():
        raise click.BadParameter("CUDA is not available on this machine; use --device cpu")
    return value


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="weightspace")
def main():
    """weightspace: build model zoos of small networks and learn from their weights.

    \b
    Start with:
      weightspace zoo build formal-languages --out zoos/fl --models 32 --steps 300
      weightspace zoo info zoos/fl
    """
    from ._allocator import keep_freed_memory

    keep_freed_memory()


@main.group()
def zoo():
    """Build and inspect model zoos."""


@zoo.command("build")
@click.argument("kind", type=click.Choice(["formal-languages"]))
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Zoo directory (created; an unfinished one is resumed).")
@click.option("--models", default=1000, show_default=True, help="Number of training runs (networks).")
@click.option("--steps", default=20000, show_default=True, help="Training steps per run.")
@click.option("--checkpoints", callback=_parse_checkpoints, metavar="0,100,...",
              help="Steps to save; default: the paper's 0,100,200,500,1000,2000,5000,10000,20000 up to --steps, plus --steps.")
@click.option("--seed", default=0, show_default=True, help="Zoo seed: fixes every run's task, initialisation and data.")
@click.option("--device", default="cpu", show_default=True, callback=_device, help="cpu or cuda.")
@click.option("--population", default=64, show_default=True, help="Networks trained together in one batched computation.")
@click.option("--batch-size", default=32, show_default=True, help="Training sequences per network and step.")
@click.option("--samples", default=1000, show_default=True, help="Sampled outputs per checkpoint for the performance metric.")
@click.option("--rollouts", default=100, show_default=True, help="Rollouts stored per checkpoint.")
@click.option("--save-every", default=1000, show_default=True, help="Steps between progress saves inside a shard.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def zoo_build(kind, out, device, quiet, **options):
    """Train a zoo of KIND and write it to --out (resumable: rerun the same command after a kill)."""
    from .zoo import KINDS, ZooConfig, build_zoo
    from .zoo.info import zoo_summary
    from .zoo.reader import load_zoo

    config = ZooConfig(**options)
    build_zoo(out, KINDS[kind], config, device=device, progress=not quiet)
    click.echo(zoo_summary(load_zoo(out)))


@zoo.command("info")
@click.argument("directory", type=click.Path())
def zoo_info(directory):
    """Summarise a zoo: runs, checkpoints, splits, quality by training step."""
    from .zoo.info import zoo_summary
    from .zoo.reader import load_zoo

    click.echo(zoo_summary(load_zoo(directory)))


if __name__ == "__main__":
    main()
