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


#: zoo kinds (kept here so ``--help`` does not import torch; a test checks it against zoo.KINDS)
ZOO_KINDS = ("formal-languages", "digits")


@zoo.command("build")
@click.argument("kind", type=click.Choice(ZOO_KINDS))
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Zoo directory (created; an unfinished one is resumed).")
@click.option("--models", default=1000, show_default=True, help="Number of training runs (networks).")
@click.option("--steps", default=20000, show_default=True, help="Training steps per run.")
@click.option("--checkpoints", callback=_parse_checkpoints, metavar="0,100,...",
              help="Steps to save; default: the paper's 0,100,200,500,1000,2000,5000,10000,20000 up to --steps, plus --steps.")
@click.option("--seed", default=0, show_default=True, help="Zoo seed: fixes every run's task, initialisation and data.")
@click.option("--device", default="cpu", show_default=True, callback=_device, help="cpu or cuda.")
@click.option("--population", type=int, default=None,
              help="Networks trained together in one batched computation [default: 64; digits 32].")
@click.option("--batch-size", default=32, show_default=True, help="Training sequences per network and step.")
@click.option("--samples", default=1000, show_default=True, help="Sampled outputs per checkpoint for the performance metric.")
@click.option("--rollouts", default=100, show_default=True, help="Rollouts stored per checkpoint.")
@click.option("--save-every", default=1000, show_default=True, help="Steps between progress saves inside a shard.")
@click.option("--mnist-dir", "data_dir", type=click.Path(), default=None,
              help="digits: directory with the MNIST IDX files (train-images-idx3-ubyte[.gz], ...). "
                   "Default: scikit-learn's bundled 8x8 digits.")
@click.option("--tile-size", type=int, default=None, help="digits: tile side in pixels [default: 4 for MNIST, 2 for 8x8].")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def zoo_build(kind, out, device, quiet, **options):
    """Train a zoo of KIND and write it to --out (resumable: rerun the same command after a kill).

    \b
    KIND is formal-languages (LSTM language models of L(m_b, m_c, m_d), paper 000)
    or digits (LSTM classifiers of rotated digits shown tile by tile, paper 000).
    """
    from .zoo import KINDS, ZooConfig, build_zoo
    from .zoo.info import zoo_summary
    from .zoo.reader import load_zoo

    zoo_kind = KINDS[kind]
    if kind != "digits" and (options["data_dir"] or options["tile_size"]):
        raise click.UsageError("--mnist-dir and --tile-size apply to the digits zoo only")
    if options["population"] is None:
        options["population"] = zoo_kind.default_population
    if kind == "digits" and options["data_dir"] is None and not quiet:
        click.echo("digits: no --mnist-dir given, using scikit-learn's bundled 8x8 digits (1,797 images)", err=True)
    build_zoo(out, zoo_kind, ZooConfig(**options), device=device, progress=not quiet)
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
