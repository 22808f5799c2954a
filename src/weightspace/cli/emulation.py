"""Paper 000's commands: the encoders, emulation pretraining, embeddings and fidelity."""

from __future__ import annotations

import click

from .._click_types import int_list
from .options import config_options, device_option, given_values


@click.group()
def encoders():
    """The six weight encoders of paper 000."""


@encoders.command("list")
@click.option("--zoo", "zoo_dir", required=True, type=click.Path(), help="Zoo whose subject networks are encoded.")
def encoders_list(zoo_dir):
    """Each encoder's parameter count for the zoo's subject networks, with the paper's (an encoder
    that cannot read them: a dash)."""
    from ..encoders import ENCODERS, build_encoder, encoder_problem
    from ..zoo.reader import load_zoo

    zoo = load_zoo(zoo_dir)
    # a zoo without emulation (imported networks) has no TaskIO: the encoders that need one show a dash
    task = zoo.task.task_io(zoo) if zoo.task.emulation else None
    click.echo(f"{'encoder':<14} {'parameters':>12}  {'paper (FL / MNIST)':>20}  invariant  augmented")
    for name in ENCODERS.names():
        if encoder_problem(name, zoo.architecture, task is not None) is not None:
            click.echo(f"{name:<14} {'-':>12}  (does not read these networks)")
            continue
        encoder = build_encoder(name, zoo.architecture, task)
        paper = encoder.paper_parameters
        paper = f"{paper[0]:>9,} / {paper[1]:>9,}" if paper else f"{'-':>9} / {'-':>9}"
        click.echo(
            f"{name:<14} {encoder.num_parameters:>12,}  {paper}  "
            f"{'yes' if encoder.permutation_invariant else 'no':<9}  "
            f"{'yes' if getattr(encoder, 'augment', False) else 'no'}"
        )


def pretrain_command() -> click.Command:
    """``weightspace pretrain``: its settings are PretrainConfig's fields, defaults and help."""
    from ..emulation.pretrain import PretrainConfig
    from ..encoders import ENCODERS

    def callback(zoo_dir, out, device, quiet, references, seeds, **given):
        """Train an encoder by emulation: the emulator must reproduce each network's rollouts from
        its embedding alone. Writes metrics.jsonl, best/last.safetensors and config.json to --out,
        and the two references under --out/references/. With --seeds, trains those seeds as one
        batched computation, each into --out/seed-N."""
        import dataclasses
        from pathlib import Path

        from .. import config as typed
        from ..emulation import pretrain
        from ..emulation.seeds import pretrain_seeds

        config = typed.from_dict(PretrainConfig, given_values(given), "pretrain")
        if seeds is None:
            pretrain(zoo_dir, out, config, device=device, progress=not quiet, references=references)
            runs = [(Path(out), config)]
        else:
            if "seed" in given_values(given):
                raise click.UsageError("give --seed or --seeds, not both")
            configs = [dataclasses.replace(config, seed=s) for s in seeds]
            outs = [Path(out) / f"seed-{s}" for s in seeds]
            pretrain_seeds(
                zoo_dir,
                outs,
                configs,
                device=device,
                progress=not quiet,
                references=references,
                log=lambda message: click.echo(message, err=True),
            )
            runs = list(zip(outs, configs))
        for run, run_config in runs:
            _report_run(run, run_config)

    params = [
        click.Option(
            ["--zoo", "zoo_dir"],
            required=True,
            type=click.Path(),
            help="Zoo to pretrain on (train split; val for early stopping).",
        ),
        click.Option(["--encoder"], required=True, type=click.Choice(ENCODERS.names()), help="Encoder architecture."),
        click.Option(
            ["--out"],
            required=True,
            type=click.Path(file_okay=False),
            help="Run directory (an unfinished run is resumed).",
        ),
        *config_options(PretrainConfig, exclude=("encoder", "encoder_options")),
        click.Option(
            ["--references/--no-references"],
            default=True,
            show_default=True,
            help="Also train the constant floor and the oracle ceiling (same settings) to read the loss against.",
        ),
        click.Option(
            ["--seeds"],
            callback=int_list,
            metavar="0,1,2,...",
            help="Seeds to train as one batched computation, each into OUT/seed-N (instead of --seed).",
        ),
        click.Option(["--device"], default="cpu", show_default=True, callback=device_option),
        click.Option(["--quiet"], is_flag=True, help="No progress bar."),
    ]
    return click.Command("pretrain", callback=callback, params=params, help=callback.__doc__)


def _report_run(out, config) -> None:
    from ..emulation import run_summary

    summary = run_summary(out)
    click.echo(f"pretraining run written to {out}")
    click.echo(
        f"best validation loss {summary['val_loss']:.4f} (step {summary['step']}; reverse KL, "
        f"{config.loss_reduction} over output classes)"
    )
    if "constant" in summary and "oracle" in summary:
        floor, ceiling = summary["constant"], summary["oracle"]
        gap = floor - ceiling
        share = (
            f"; {100 * (floor - summary['val_loss']) / gap:.0f}% of the way from floor to ceiling" if gap > 0 else ""
        )
        click.echo(f"constant floor {floor:.4f}, oracle ceiling {ceiling:.4f}{share}")


@click.command("embed")
@click.option("--run", "run_dir", required=True, type=click.Path(), help="Pretraining run directory.")
@click.option("--zoo", "zoo_dir", required=True, type=click.Path(), help="Zoo whose checkpoints are embedded.")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="Parquet file to write.")
@click.option("--device", default="cpu", show_default=True, callback=device_option)
def embed_command(run_dir, zoo_dir, out, device):
    """Embed every checkpoint of a zoo with a pretrained encoder (Parquet: model_id, run_id, step, split, z_*)."""
    from ..emulation import load_run
    from ..emulation.embed import embed_zoo
    from ..zoo.reader import load_zoo

    table = embed_zoo(load_run(run_dir, device), load_zoo(zoo_dir), out, device=device)
    click.echo(f"wrote {len(table)} embeddings to {out}")


@click.command("fidelity")
@click.option("--run", "run_dir", required=True, type=click.Path(), help="Pretraining run directory.")
@click.option("--zoo", "zoo_dir", required=True, type=click.Path(), help="Zoo with the networks to emulate.")
@click.option("--split", default="val", show_default=True, type=click.Choice(["train", "val", "ood"]))
@click.option("--samples", default=100, show_default=True, help="Emulator samples per network (formal languages).")
@click.option(
    "--out", required=True, type=click.Path(file_okay=False), help="Directory for fidelity.csv and fidelity.png."
)
def fidelity_command(run_dir, zoo_dir, split, samples, out):
    """Original vs emulated performance (paper figure 5) and their correlation."""
    from pathlib import Path

    from .. import storage
    from ..emulation import load_run
    from ..emulation.fidelity import emulated_performance, plot_fidelity
    from ..zoo.reader import load_zoo

    zoo = load_zoo(zoo_dir)
    run = load_run(run_dir)
    scores = emulated_performance(run, zoo, zoo.indices(split), samples=samples)
    Path(out).mkdir(parents=True, exist_ok=True)
    storage.write_text(Path(out) / "fidelity.csv", scores.to_csv(index=False))
    r = plot_fidelity(scores, Path(out) / "fidelity.png", f"{run.config.encoder} on {zoo.kind} ({split})")
    click.echo(
        f"{len(scores)} networks; Pearson r (original vs emulated) = {r:.3f}; figure {Path(out) / 'fidelity.png'}"
    )
