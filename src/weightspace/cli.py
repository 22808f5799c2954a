"""The ``weightspace`` command: a thin layer over the library."""

from __future__ import annotations

import sys

import click

from . import __version__
from ._click_types import int_list
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
ZOO_KINDS = ("formal-languages", "digits", "cartpole")


@zoo.command("build")
@click.argument("kind", type=click.Choice(ZOO_KINDS))
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Zoo directory (created; an unfinished one is resumed).")
@click.option("--models", default=1000, show_default=True, help="Number of training runs (networks).")
@click.option("--steps", type=int, default=None, help="Training steps per run [default: 20000; cartpole 8000].")
@click.option("--checkpoints", callback=int_list, metavar="0,100,...",
              help="Steps to save; default: the paper's 0,100,200,500,1000,2000,5000,10000,20000 up to --steps, plus --steps.")
@click.option("--seed", default=0, show_default=True, help="Zoo seed: fixes every run's task, initialisation and data.")
@click.option("--device", default="cpu", show_default=True, callback=_device, help="cpu or cuda.")
@click.option("--population", type=int, default=None,
              help="Networks trained together in one batched computation [default: 64; digits 32].")
@click.option("--batch-size", default=32, show_default=True, help="Training sequences per network and step.")
@click.option("--samples", type=int, default=None,
              help="Evaluation samples per checkpoint: sampled strings, training images for train_loss, or "
                   "test episodes [default: 1000; cartpole 100].")
@click.option("--rollouts", default=100, show_default=True, help="Rollouts stored per checkpoint.")
@click.option("--save-every", default=1000, show_default=True, help="Steps between progress saves inside a shard.")
@click.option("--mnist-dir", "data_dir", type=click.Path(), default=None,
              help="digits: directory with the MNIST IDX files (train-images-idx3-ubyte[.gz], ...). "
                   "Default: scikit-learn's bundled 8x8 digits.")
@click.option("--tile-size", type=int, default=None, help="digits: tile side in pixels [default: 4 for MNIST, 2 for 8x8].")
@click.option("--max-episode-steps", type=int, default=200, show_default=True,
              help="cartpole: episode cap (200 as in paper 004, CartPole-v0; v1 uses 500).")
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
    for option in ("population", "steps", "samples"):  # per-kind defaults where the user gave none
        if options[option] is None:
            options[option] = getattr(zoo_kind, f"default_{option}", ZooConfig.field_defaults()[option])
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


ENCODER_NAMES = ("statistics", "flattened", "transformer", "dwsnet", "probing", "interactive")


@main.group()
def encoders():
    """The six weight encoders of paper 000."""


@encoders.command("list")
@click.option("--zoo", "zoo_dir", required=True, type=click.Path(), help="Zoo whose subject networks are encoded.")
def encoders_list(zoo_dir):
    """Each encoder's parameter count for the zoo's subject networks, with the paper's."""
    from .encoders import build_encoder, encoder_class, task_io
    from .zoo.reader import load_zoo

    zoo = load_zoo(zoo_dir)
    task = task_io(zoo)
    click.echo(f"{'encoder':<12} {'parameters':>12}  {'paper (FL / MNIST)':>20}  invariant  augmented")
    for name in ENCODER_NAMES:
        encoder = build_encoder(name, zoo.architecture, task)
        paper = PAPER_PARAMETERS[name]
        click.echo(f"{name:<12} {encoder.num_parameters:>12,}  {paper[0]:>9,} / {paper[1]:>9,}  "
                   f"{'yes' if encoder_class(name).permutation_invariant else 'no':<9}  "
                   f"{'yes' if getattr(encoder, 'augment', False) else 'no'}")


#: paper 000, tables 5-10
PAPER_PARAMETERS = {"statistics": (1248016, 1248016), "flattened": (1797264, 1978000),
                    "transformer": (1276688, 1278480), "dwsnet": (1279736, 1282400),
                    "probing": (1241718, 1254016), "interactive": (1235830, 1240960)}


@main.command("pretrain")
@click.option("--zoo", "zoo_dir", required=True, type=click.Path(), help="Zoo to pretrain on (train split; val for early stopping).")
@click.option("--encoder", required=True, type=click.Choice(ENCODER_NAMES), help="Encoder architecture.")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Run directory (an unfinished run is resumed).")
@click.option("--steps", default=100_000, show_default=True, help="Maximum training steps (early stopping may end sooner).")
@click.option("--batch-size", default=64, show_default=True, help="Subject networks per step.")
@click.option("--rollouts-per-network", default=10, show_default=True, help="Stored rollouts emulated per network and step.")
@click.option("--eval-every", default=500, show_default=True, help="Steps between validation evaluations.")
@click.option("--patience", default=10, show_default=True, help="Evaluations without improvement before stopping.")
@click.option("--learning-rate", default=1e-4, show_default=True)
@click.option("--emulator-hidden", default=256, show_default=True, help="Hidden size of the 2-layer LSTM emulator.")
@click.option("--seed", default=0, show_default=True)
@click.option("--device", default="cpu", show_default=True, callback=_device)
@click.option("--quiet", is_flag=True, help="No progress bar.")
def pretrain_command(zoo_dir, out, device, quiet, **options):
    """Train an encoder by emulation: the emulator must reproduce each network's rollouts from
    its embedding alone. Writes metrics.jsonl, best/last.safetensors and config.json to --out."""
    from .emulation import PretrainConfig, pretrain

    pretrain(zoo_dir, out, PretrainConfig(**options), device=device, progress=not quiet)
    click.echo(f"pretraining run written to {out}")


@main.command("embed")
@click.option("--run", "run_dir", required=True, type=click.Path(), help="Pretraining run directory.")
@click.option("--zoo", "zoo_dir", required=True, type=click.Path(), help="Zoo whose checkpoints are embedded.")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="Parquet file to write.")
@click.option("--device", default="cpu", show_default=True, callback=_device)
def embed_command(run_dir, zoo_dir, out, device):
    """Embed every checkpoint of a zoo with a pretrained encoder (Parquet: model_id, run_id, step, split, z_*)."""
    from .emulation import load_run
    from .emulation.embed import embed_zoo
    from .zoo.reader import load_zoo

    table = embed_zoo(load_run(run_dir, device), load_zoo(zoo_dir), out, device=device)
    click.echo(f"wrote {len(table)} embeddings to {out}")


@main.command("fidelity")
@click.option("--run", "run_dir", required=True, type=click.Path(), help="Pretraining run directory.")
@click.option("--zoo", "zoo_dir", required=True, type=click.Path(), help="Zoo with the networks to emulate.")
@click.option("--split", default="val", show_default=True, type=click.Choice(["train", "val", "ood"]))
@click.option("--samples", default=100, show_default=True, help="Emulator samples per network (formal languages).")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Directory for fidelity.csv and fidelity.png.")
def fidelity_command(run_dir, zoo_dir, split, samples, out):
    """Original vs emulated performance (paper figure 5) and their correlation."""
    from pathlib import Path

    from .emulation import load_run
    from .emulation.fidelity import emulated_performance, plot_fidelity
    from .zoo import storage
    from .zoo.reader import load_zoo

    zoo = load_zoo(zoo_dir)
    run = load_run(run_dir)
    scores = emulated_performance(run, zoo, zoo.indices(split), samples=samples)
    Path(out).mkdir(parents=True, exist_ok=True)
    storage.write_text(Path(out) / "fidelity.csv", scores.to_csv(index=False))
    r = plot_fidelity(scores, Path(out) / "fidelity.png", f"{run.config.encoder} on {zoo.kind} ({split})")
    click.echo(f"{len(scores)} networks; Pearson r (original vs emulated) = {r:.3f}; figure {Path(out) / 'fidelity.png'}")


@main.command("run")
@click.argument("config_file", type=click.Path())
@click.option("--seeds", callback=int_list, metavar="0,1,...", help="Overrides the config's seeds.")
@click.option("--results", "results_dir", default=None, type=click.Path(file_okay=False),
              help="Overrides the config's results directory [default: results].")
@click.option("--device", default="cpu", show_default=True, callback=_device)
@click.option("--quiet", is_flag=True, help="No progress output.")
def run_command(config_file, seeds, results_dir, device, quiet):
    """Run an experiment end to end (zoo, pretraining, embeddings, prediction, analyses, report),
    skipping steps whose outputs exist. Writes RESULTS/NAME/report.md and results.json."""
    from .experiments import load_experiment
    from .experiments.runner import run_experiment

    import tomllib
    from pathlib import Path

    from .agents import report as agents_report

    try:
        kind = tomllib.loads(Path(config_file).read_text()).get("kind")
    except (OSError, tomllib.TOMLDecodeError):
        kind = None  # load_experiment below reports the problem
    if kind == agents_report.EXPERIMENT_KIND:  # paper 004's pipeline (CartPole agent embeddings)
        experiment = agents_report.load_experiment(config_file)
        out = Path(results_dir or "results") / experiment.name
        click.echo(f"report: {agents_report.run_report(experiment, out, device=device, progress=not quiet)}")
        return
    config = load_experiment(config_file, {"seeds": list(seeds) if seeds else None, "results_dir": results_dir})
    out = run_experiment(config, device=device, progress=not quiet)
    click.echo(f"report: {out / 'report.md'}")


@main.command("report")
@click.argument("run_dir", type=click.Path())
def report_command(run_dir):
    """Rebuild report.md, table.md/csv and the prediction figures from RUN_DIR/results.json."""
    from .experiments.report import write_report

    click.echo(f"report: {write_report(run_dir)}")


def _register_agent_commands():
    from .agents.commands import convergence, generative

    main.add_command(generative)
    main.add_command(convergence)


_register_agent_commands()

if __name__ == "__main__":
    main()
