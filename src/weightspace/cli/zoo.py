"""``weightspace zoo``: build a zoo of any registered task family, and summarise one."""

from __future__ import annotations

import click

from .._click_types import int_list
from .options import config_options, device_option, executor_options, given_values, make_executor


@click.group()
def zoo():
    """Build and inspect model zoos."""


class _TaskCommands(click.Group):
    """``zoo build TASK``: one subcommand per registered task family, its options generated from
    that family's config dataclass (so each shows exactly its own settings and defaults). The
    families are imported only when one is asked for."""

    def list_commands(self, ctx):
        from ..tasks import get_task, task_names

        return [name for name in task_names() if get_task(name).buildable]

    def get_command(self, ctx, name):
        from ..tasks import get_task, task_names

        if name not in task_names() or not get_task(name).buildable:
            return None
        return _build_command(get_task(name))


def _build_command(task) -> click.Command:
    """The ``zoo build NAME`` command of ``task``: one option per config field."""

    def callback(out, device, quiet, executor, address, **given):
        from ..zoo import build_zoo
        from ..zoo.info import zoo_summary
        from ..zoo.reader import load_zoo

        config = task.config(given_values(given), where="zoo build")
        if not quiet:
            for notice in task.notices(config):
                click.echo(notice, err=True)
        build_zoo(out, task, config, device=device, progress=not quiet, executor=make_executor(executor, address))
        click.echo(zoo_summary(load_zoo(out)))

    params = [
        click.Option(
            ["--out"],
            required=True,
            type=click.Path(file_okay=False),
            help="Zoo directory (created; an unfinished one is resumed).",
        ),
        click.Option(["--device"], default="cpu", show_default=True, callback=device_option, help="cpu or cuda."),
        *executor_options("the shards as parallel Ray tasks"),
        click.Option(["--quiet"], is_flag=True, help="No progress bar."),
        *config_options(task.config_class),
    ]
    return click.Command(
        task.name,
        callback=callback,
        params=params,
        help=(
            f"Train a zoo of {task.summary or task.name} and write it to --out (resumable: rerun the same "
            "command after a kill)."
        ),
    )


@zoo.group("build", cls=_TaskCommands)
def zoo_build():
    """Train a zoo of one task family: weightspace zoo build TASK --out DIR [options].

    \b
    Each TASK has its own settings: weightspace zoo build TASK --help.
    """


@zoo.command("info")
@click.argument("directory", type=click.Path())
def zoo_info(directory):
    """Summarise a zoo: runs, checkpoints, splits, quality by training step."""
    from ..zoo.info import zoo_summary
    from ..zoo.reader import load_zoo

    click.echo(zoo_summary(load_zoo(directory)))


@zoo.command("import")
@click.argument(
    "source_format", metavar="FORMAT", type=click.Choice(["state-dicts", "small-cnn-zoo", "model-zoos", "rnn-zoo-npy"])
)
@click.argument("src", type=click.Path())
@click.option(
    "--out", required=True, type=click.Path(file_okay=False), help="Zoo directory (an unfinished import resumes)."
)
@click.option("--properties", type=click.Path(), help="state-dicts: CSV, one row per checkpoint (file name first).")
@click.option("--module", default=None, help="pkg.mod:factory returning the untrained module (default: inferred).")
@click.option("--split-file", type=click.Path(), default=None, help="small-cnn-zoo: nfn's split file (JSON or .npz).")
@click.option("--val-fraction", type=float, default=0.1, show_default=True, help="Random split: runs for validation.")
@click.option("--test-fraction", type=float, default=0.1, show_default=True, help="Random split: held-out runs.")
@click.option("--population", type=int, default=256, show_default=True, help="Checkpoints per shard file.")
@click.option(
    "--input-shape",
    callback=int_list,
    default=None,
    help="One input's shape, e.g. 1,32,32 (with a module factory): what module-probing feeds "
    "[small-cnn-zoo default: its input channels,32,32].",
)
@click.option("--quiet", is_flag=True, help="No progress bar.")
def zoo_import(
    source_format, src, out, properties, module, split_file, val_fraction, test_fraction, population, input_shape, quiet
):
    """Write networks trained elsewhere as a weightspace zoo: FORMAT is state-dicts (a folder of
    .safetensors/.pt/.pth checkpoints and --properties), small-cnn-zoo (weights.npy, layout.csv,
    metrics.csv.gz), model-zoos (trial folders with result.json and checkpoint_* folders) or
    rnn-zoo-npy (paper 000's released formal-language zoo, imported as a formal-languages zoo). The
    zoo then works with zoo info, the encoders and prediction."""
    from pathlib import Path

    from ..errors import ConfigError
    from ..zoo import importers
    from ..zoo.info import zoo_summary
    from ..zoo.reader import load_zoo

    settings = {"val_fraction": val_fraction, "test_fraction": test_fraction, "population": population}
    if input_shape is not None:
        if source_format == "rnn-zoo-npy":
            raise ConfigError("--input-shape is for imported modules; rnn-zoo-npy imports LSTMs fed token sequences")
        settings["input_shape"] = tuple(input_shape)
    if source_format == "state-dicts":
        if not properties:
            raise ConfigError("state-dicts needs --properties FILE.csv (one row per checkpoint, its file name first)")
        folder = Path(src)
        if not folder.is_dir():
            raise ConfigError(f"{src} is not a folder of checkpoints")
        paths = sorted(p for p in folder.iterdir() if p.suffix in importers.CHECKPOINT_SUFFIXES)
        importers.from_state_dicts(paths, properties, module, out=out, progress=not quiet, **settings)
    elif source_format == "rnn-zoo-npy":
        importers.from_rnn_zoo_npy(src, out=out, progress=not quiet, population=population)
    elif source_format == "model-zoos":
        importers.from_model_zoos(src, out=out, module=module, progress=not quiet, **settings)
    else:
        importers.from_small_cnn_zoo(src, out=out, split_file=split_file, progress=not quiet, **settings)
    click.echo(zoo_summary(load_zoo(out)))
