"""The ``weightspace`` command: a thin layer over the library."""

from __future__ import annotations

import sys

import click

from . import __version__
from ._click_types import int_list
from .errors import WeightspaceError


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
@click.option("--threads", type=click.IntRange(min=1), default=None, metavar="N",
              help="CPU threads for torch [default: the cores this process may use (its CPU affinity)]. "
                   "Given, it also overrides an experiment family's own choice (some run best on one).")
@click.pass_context
def main(ctx, threads):
    """weightspace: build model zoos of small networks and learn from their weights.

    \b
    Start with:
      weightspace zoo build formal-languages --out zoos/fl --models 32 --steps 300
      weightspace zoo info zoos/fl
    """
    from ._allocator import keep_freed_memory
    from .threads import set_threads

    keep_freed_memory()
    set_threads(threads)
    ctx.obj = {"threads": threads}


@main.group()
def zoo():
    """Build and inspect model zoos."""


class _TaskCommands(click.Group):
    """``zoo build TASK``: one subcommand per registered task family, its options generated from
    that family's config dataclass (so each shows exactly its own settings and defaults). The
    families are imported only when one is asked for."""

    def list_commands(self, ctx):
        from .tasks import task_names

        return task_names()

    def get_command(self, ctx, name):
        from .tasks import get_task, task_names

        if name not in task_names():
            return None
        return _build_command(get_task(name))


def _config_options(cls, exclude=()) -> list[click.Option]:
    """One option per field of config dataclass ``cls``, help from its metadata and the default
    shown from the dataclass (the one source of defaults: an option not given stays None and the
    dataclass fills it in). Booleans are ``--x/--no-x`` flags; tuples are comma-separated ints."""
    import dataclasses
    import typing

    hints = typing.get_type_hints(cls)
    options = []
    for f in dataclasses.fields(cls):
        if f.name in exclude:
            continue
        flag = f.metadata.get("flag", "--" + f.name.replace("_", "-"))
        args = [a for a in typing.get_args(hints[f.name]) if a is not type(None)]
        base = args[0] if args else hints[f.name]
        help_text = f.metadata.get("help", "") + ("" if f.default is None else f" [default: {f.default}]")
        if base is bool:
            options.append(click.Option([f"{flag}/--no-{flag[2:]}", f.name], default=None, help=help_text))
        elif typing.get_origin(base) is tuple:
            options.append(click.Option([flag, f.name], callback=int_list, metavar="0,100,...", help=help_text))
        else:
            options.append(click.Option([flag, f.name], type=base, default=None, help=help_text))
    return options


def _given(values: dict) -> dict:
    """The options the user gave (the others are None and take the dataclass defaults)."""
    return {name: value for name, value in values.items() if value is not None}


def _executor_options(what: str) -> list[click.Option]:
    return [
        click.Option(["--executor"], type=click.Choice(["local", "ray"]), default="local", show_default=True,
                     help=f"local: in this process, one after another; ray: {what} "
                          "(pip install 'weightspace[ray]'; docs/cluster.md)."),
        click.Option(["--address"], default=None, metavar="ADDR",
                     help="Ray cluster to join (with --executor ray; default: start a local Ray instance)."),
    ]


def _executor(name: str, address: str | None):
    """The executor the options ask for: None (local) or a RayExecutor."""
    if address is not None and name != "ray":
        raise click.UsageError("--address needs --executor ray")
    if name != "ray":
        return None
    from .experiments.ray_executor import RayExecutor

    return RayExecutor(address=address)


def _build_command(task) -> click.Command:
    """The ``zoo build NAME`` command of ``task``: one option per config field."""

    def callback(out, device, quiet, executor, address, **given):
        from .zoo import build_zoo
        from .zoo.info import zoo_summary
        from .zoo.reader import load_zoo

        config = task.config(_given(given), where="zoo build")
        if not quiet:
            for notice in task.notices(config):
                click.echo(notice, err=True)
        build_zoo(out, task, config, device=device, progress=not quiet, executor=_executor(executor, address))
        click.echo(zoo_summary(load_zoo(out)))

    params = [
        click.Option(["--out"], required=True, type=click.Path(file_okay=False),
                     help="Zoo directory (created; an unfinished one is resumed)."),
        click.Option(["--device"], default="cpu", show_default=True, callback=_device, help="cpu or cuda."),
        *_executor_options("the shards as parallel Ray tasks"),
        click.Option(["--quiet"], is_flag=True, help="No progress bar."),
        *_config_options(task.config_class),
    ]
    return click.Command(task.name, callback=callback, params=params, help=(
        f"Train a zoo of {task.summary or task.name} and write it to --out (resumable: rerun the same "
        "command after a kill)."))


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
    from .encoders import build_encoder, encoder_class
    from .zoo.reader import load_zoo

    zoo = load_zoo(zoo_dir)
    task = zoo.task.task_io(zoo)
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


def _pretrain_command() -> click.Command:
    """``weightspace pretrain``: its settings are PretrainConfig's fields, defaults and help."""
    from .emulation.pretrain import PretrainConfig

    def callback(zoo_dir, out, device, quiet, references, seeds, **given):
        """Train an encoder by emulation: the emulator must reproduce each network's rollouts from
        its embedding alone. Writes metrics.jsonl, best/last.safetensors and config.json to --out,
        and the two references under --out/references/. With --seeds, trains those seeds as one
        batched computation, each into --out/seed-N."""
        import dataclasses
        from pathlib import Path

        from . import config as typed
        from .emulation import pretrain
        from .emulation.seeds import pretrain_seeds

        config = typed.from_dict(PretrainConfig, _given(given), "pretrain")
        if seeds is None:
            pretrain(zoo_dir, out, config, device=device, progress=not quiet, references=references)
            runs = [(Path(out), config)]
        else:
            if "seed" in _given(given):
                raise click.UsageError("give --seed or --seeds, not both")
            configs = [dataclasses.replace(config, seed=s) for s in seeds]
            outs = [Path(out) / f"seed-{s}" for s in seeds]
            pretrain_seeds(zoo_dir, outs, configs, device=device, progress=not quiet, references=references,
                           log=lambda message: click.echo(message, err=True))
            runs = list(zip(outs, configs))
        for run, run_config in runs:
            _report_run(run, run_config)

    params = [
        click.Option(["--zoo", "zoo_dir"], required=True, type=click.Path(),
                     help="Zoo to pretrain on (train split; val for early stopping)."),
        click.Option(["--encoder"], required=True, type=click.Choice(ENCODER_NAMES), help="Encoder architecture."),
        click.Option(["--out"], required=True, type=click.Path(file_okay=False),
                     help="Run directory (an unfinished run is resumed)."),
        *_config_options(PretrainConfig, exclude=("encoder", "encoder_options")),
        click.Option(["--references/--no-references"], default=True, show_default=True,
                     help="Also train the constant floor and the oracle ceiling (same settings) to read the loss against."),
        click.Option(["--seeds"], callback=int_list, metavar="0,1,2,...",
                     help="Seeds to train as one batched computation, each into OUT/seed-N (instead of --seed)."),
        click.Option(["--device"], default="cpu", show_default=True, callback=_device),
        click.Option(["--quiet"], is_flag=True, help="No progress bar."),
    ]
    return click.Command("pretrain", callback=callback, params=params, help=callback.__doc__)


def _report_run(out, config) -> None:
    from .emulation import run_summary

    summary = run_summary(out)
    click.echo(f"pretraining run written to {out}")
    click.echo(f"best validation loss {summary['val_loss']:.4f} (step {summary['step']}; reverse KL, "
               f"{config.loss_reduction} over output classes)")
    if "constant" in summary and "oracle" in summary:
        floor, ceiling = summary["constant"], summary["oracle"]
        gap = floor - ceiling
        share = (f"; {100 * (floor - summary['val_loss']) / gap:.0f}% of the way from floor to ceiling"
                 if gap > 0 else "")
        click.echo(f"constant floor {floor:.4f}, oracle ceiling {ceiling:.4f}{share}")


main.add_command(_pretrain_command())


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
    from . import storage
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
@click.option("--results-dir", "--results", "results_dir", default=None, type=click.Path(file_okay=False),
              help="Overrides the config's results directory [default: results].")
@click.option("--set", "assignments", multiple=True, metavar="SECTION.KEY=VALUE",
              help="Overrides one setting; the value is read as TOML (3, 1e-3, true, [0, 1], \"text\"). "
                   "Pick a [[zoos]] table by name: --set zoos.digits.models=64. Repeatable.")
@click.option("--print-config", is_flag=True,
              help="Print the resolved config (every default, each field's help as a comment) as TOML and exit.")
@click.option("--device", default="cpu", show_default=True, callback=_device)
@click.option("--quiet", is_flag=True, help="No progress output.")
@click.pass_context
def run_command(ctx, config_file, seeds, results_dir, assignments, print_config, device, quiet, executor, address):
    """Run the experiment in CONFIG_FILE (TOML) end to end and write RESULTS/NAME/report.md.

    Every step's output is cached under a key of its settings and inputs: a rerun reuses finished
    steps, a changed setting recomputes exactly the steps that depend on it, and a killed run
    resumes. The command line wins over the file. The file's top-level `family` picks the
    pipeline: representations (paper 000; the default), degeneracy (paper 002) or
    agent-embeddings (paper 004).
    """
    from .experiments import config_toml, load_experiment, run_experiment
    from .experiments.config import parse_assignment

    config = load_experiment(config_file, seeds, results_dir, [parse_assignment(a) for a in assignments])
    if print_config:
        click.echo(config_toml(config, f"{config_file}, resolved: the file, the command line's overrides and "
                                       "every default"), nl=False)
        return
    threads = (ctx.obj or {}).get("threads")
    runner = _executor(executor, address)
    click.echo(f"report: {run_experiment(config, device=device, progress=not quiet, threads=threads, executor=runner)}")


run_command.params.extend(_executor_options("the steps as Ray tasks, as many at once as the cluster allows"))


@main.command("report")
@click.argument("run_dir", type=click.Path())
@click.option("--publish", type=click.Path(file_okay=False), default=None,
              help="Also copy the report and every image it shows into this folder (self-contained, to commit).")
def report_command(run_dir, publish):
    """Rebuild RUN_DIR/report.md (and its tables and figures) from the files the last run left there."""
    from .experiments.report import publish_report, write_report

    click.echo(f"report: {write_report(run_dir)}")
    if publish:
        click.echo(f"published: {publish_report(run_dir, publish)}")


# ---- paper 004: CartPoleGen and convergent learning ----------------------------------------
def _levels(ctx, param, value):
    try:
        levels = tuple(float(v) for v in value.split(",") if v.strip())
    except ValueError:
        raise click.BadParameter(f"expected comma-separated fractions like 0,0.5,1, got {value!r}") from None
    if not levels or any(not 0 <= v <= 1 for v in levels):
        raise click.BadParameter("degradation levels are fractions in [0, 1]")
    return levels


def _require_cartpole(weights):
    from .rl.cartpole import CARTPOLE_NET

    if weights.spec.to_json() != CARTPOLE_NET.spec.to_json():
        raise WeightspaceError("survival time needs CartPoleNets (4-30-2 ELU MLPs); these networks are "
                               f"{weights.spec.architecture} {dict(weights.spec.config)}")


def _summary(values) -> str:
    import numpy as np

    from .rl.evaluation import GROUP_NAMES, survival_group

    values = np.asarray(values, dtype=np.float64)
    counts = np.bincount(survival_group(values), minlength=5)[1:]
    groups = ", ".join(f"{name}: {c}" for name, c in zip(GROUP_NAMES, counts))
    return f"survival time mean {values.mean():.1f}, std {values.std(ddof=1) if len(values) > 1 else 0:.1f} " \
           f"(min {values.min():.1f}, max {values.max():.1f}); by group {groups}"


# ------------------------------------------------------------------------------------------
@main.group()
def generative():
    """CartPoleGen (paper 004): a VAE over network weights, and what it is used for.

    \b
    Typical use:
      weightspace zoo build cartpole --out zoos/cp --models 2048 --steps 8000
      weightspace generative train zoos/cp --out models/cp-all
      weightspace generative train zoos/cp --out models/cp-good --group 4
      weightspace generative sample models/cp-good --count 200 --out good.safetensors
    """


@generative.command("train")
@click.argument("zoo", type=click.Path(exists=True, file_okay=False))
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Directory for the trained model.")
@click.option("--group", "groups", type=click.IntRange(1, 4), multiple=True,
              help="Train only on networks of this survival-time group (1: 1-50, ..., 4: 151-200); repeatable. "
                   "One model per group is the paper's conditional setting.")
@click.option("--conditional", is_flag=True, help="Train one VAE conditioned on the group instead (one-hot "
              "input, one decoder head and one sampling prior per group).")
@click.option("--step", type=int, default=None, help="Zoo checkpoint step to learn from [default: the last one].")
@click.option("--split", type=click.Choice(["train", "val", "all"]), default="all", show_default=True,
              help="Which runs of the zoo to learn from.")
@click.option("--latent-size", default=32, show_default=True)
@click.option("--hidden-size", default=256, show_default=True)
@click.option("--hidden-layers", default=2, show_default=True, help="Hidden layers of the encoder and of the decoder.")
@click.option("--likelihood-std", default=0.3, show_default=True,
              help="Standard deviation of the Gaussian likelihood, in standardised weight units.")
@click.option("--epochs", default=20, show_default=True)
@click.option("--batch-size", default=10, show_default=True)
@click.option("--learning-rate", default=1e-3, show_default=True, help="Adam learning rate.")
@click.option("--seed", default=0, show_default=True)
@click.option("--device", default="cpu", show_default=True, callback=_device)
@click.option("--overwrite", is_flag=True, help="Replace a model already in --out.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def generative_train(zoo, out, groups, conditional, step, split, latent_size, hidden_size, hidden_layers,
                     likelihood_std, epochs, batch_size, learning_rate, seed, device, overwrite, quiet):
    """Train CartPoleGen on the networks of ZOO (one per run, at the last checkpoint)."""
    from pathlib import Path

    import torch

    from .generative.data import final_networks
    from .generative.vae import CONFIG_FILE, VAEConfig, VAETraining, WeightVAE, train_vae
    from .zoo.reader import load_zoo

    if (Path(out) / CONFIG_FILE).exists() and not overwrite:
        raise WeightspaceError(f"{out} already holds a model; choose another --out or pass --overwrite")
    if conditional and groups:
        raise click.UsageError("--conditional learns every group at once; leave out --group")
    source = load_zoo(zoo)
    networks = final_networks(source, step, None if split == "all" else split, groups or None)
    labels = None
    if conditional:
        if "group" not in networks.table.columns:
            raise WeightspaceError(f"{zoo} has no survival-time groups to condition on")
        labels = torch.as_tensor(networks.groups - 1)
    config = VAEConfig(input_size=source.spec.num_parameters, latent_size=latent_size, hidden_size=hidden_size,
                       hidden_layers=hidden_layers, num_classes=4 if conditional else 0, likelihood_std=likelihood_std)
    training = VAETraining(epochs, batch_size, learning_rate, seed)
    model = WeightVAE(config, source.spec).to(device)
    history = train_vae(model, networks.flat.to(device), None if labels is None else labels.to(device),
                        training, progress=not quiet)
    model.save(out, {"zoo": str(Path(zoo).resolve()), "networks": len(networks), "groups": list(groups) or "all",
                     "conditional": conditional, "split": split, "step": int(networks.table["step"].iloc[0]),
                     "training": {"epochs": epochs, "batch_size": batch_size, "learning_rate": learning_rate,
                                  "seed": seed}, "loss_by_epoch": history})
    click.echo(f"trained on {len(networks):,} networks; loss {history[0]:.1f} -> {history[-1]:.1f}; saved to {out}")


@generative.command("sample")
@click.argument("model", type=click.Path(exists=True, file_okay=False))
@click.option("--count", default=200, show_default=True, type=click.IntRange(1), help="Networks to generate.")
@click.option("--group", type=click.IntRange(1, 4), default=None, help="Conditional models: the group to sample.")
@click.option("--out", type=click.Path(dir_okay=False), default=None,
              help="Write the networks (and their survival times) to this .safetensors file.")
@click.option("--evaluate/--no-evaluate", default=True, show_default=True, help="Measure survival times.")
@click.option("--episodes", default=100, show_default=True, help="Test episodes per survival time.")
@click.option("--max-episode-steps", default=200, show_default=True)
@click.option("--seed", default=0, show_default=True)
@click.option("--device", default="cpu", show_default=True, callback=_device)
def generative_sample(model, count, group, out, evaluate, episodes, max_episode_steps, seed, device):
    """Generate new networks from a trained MODEL (latents from the prior, decoder means)."""
    from pathlib import Path

    import torch

    from .generative.data import save_networks
    from .generative.vae import WeightVAE
    from .rl.cartpole import CARTPOLE_NET
    from .rl.evaluation import survival_time

    vae = WeightVAE.load(model, device)
    if vae.conditional and group is None:
        raise click.UsageError("this model is conditional: choose a --group")
    if not vae.conditional and group is not None:
        raise click.UsageError("--group applies to conditional models only (this one is not)")
    generator = torch.Generator(device=device).manual_seed(seed)
    weights = vae.population(vae.sample(count, None if group is None else group - 1, generator))
    extra = {}
    if evaluate:
        _require_cartpole(weights)
        survival = survival_time(CARTPOLE_NET, weights, episodes, max_episode_steps)
        extra["survival_time"] = survival
        click.echo(f"{count} networks: {_summary(survival.numpy())}")
    if out:
        save_networks(out, weights, extra, {"model": str(Path(model).resolve()), "group": str(group)})
        click.echo(f"wrote {out}")


@generative.command("interpolate")
@click.argument("model", type=click.Path(exists=True, file_okay=False))
@click.argument("networks", type=click.Path(exists=True))
@click.option("--pair", nargs=2, type=int, required=True, metavar="I J",
              help="The two networks (zoo rows, or positions in a network file).")
@click.option("--points", default=20, show_default=True, type=click.IntRange(2))
@click.option("--max-alpha", default=1.5, show_default=True, help="Alphas run from 0 to this (> 1 extrapolates).")
@click.option("--episodes", default=100, show_default=True)
@click.option("--max-episode-steps", default=200, show_default=True)
@click.option("--plot", type=click.Path(dir_okay=False), default=None, help="Draw figure 7 to this PNG.")
def generative_interpolate(model, networks, pair, points, max_alpha, episodes, max_episode_steps, plot):
    """Walk from one network's embedding to another's (and beyond) in MODEL's latent space,
    next to the straight walk in weight space (paper 004, figure 7). NETWORKS is a zoo or a network file."""
    from .generative.data import load_networks
    from .generative.interpolation import alpha_grid, interpolate_pairs
    from .generative.vae import WeightVAE

    vae = WeightVAE.load(model)
    if vae.conditional:
        raise WeightspaceError("interpolation uses an unconditional model (trained without --conditional)")
    weights, _ = load_networks(networks, list(pair))
    _require_cartpole(weights)
    flat = weights.flatten()
    result = interpolate_pairs(vae, [(flat[0], flat[1])], alpha_grid(points, max_alpha), episodes, max_episode_steps)
    table = result.table.pivot(index="alpha", columns="space", values="survival_time")
    click.echo(table.to_string(float_format=lambda v: f"{v:.2f}"))
    if plot:
        from .generative.figures import interpolation_panels

        interpolation_panels(result.table, [f"{pair[0]} -> {pair[1]}"], result.endpoint_survival, plot,
                             max_episode_steps)
        click.echo(f"wrote {plot}")


@generative.command("repair")
@click.argument("model", type=click.Path(exists=True, file_okay=False))
@click.argument("networks", type=click.Path(exists=True))
@click.option("--network", "index", type=int, required=True, help="The network to damage and repair (zoo row or position).")
@click.option("--levels", default="0,0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8,0.9,1", show_default=True, callback=_levels,
              help="Fractions of weights zeroed.")
@click.option("--criterion", type=click.Choice(["missing", "whole", "both"]), default="both", show_default=True)
@click.option("--candidates", default=200, show_default=True, help="Networks sampled per level (gamma).")
@click.option("--keep", default=10, show_default=True, help="Candidates kept by the criterion (k).")
@click.option("--threshold", default=5.0, show_default=True, help="Success: survival time within this (epsilon).")
@click.option("--fill", is_flag=True,
              help="A candidate only fills the missing weights instead of replacing the network (algorithm 1).")
@click.option("--episodes", default=100, show_default=True)
@click.option("--max-episode-steps", default=200, show_default=True)
@click.option("--seed", default=0, show_default=True)
@click.option("--plot", type=click.Path(dir_okay=False), default=None, help="Draw figure 8 to this PNG.")
def generative_repair(model, networks, index, levels, criterion, candidates, keep, threshold, fill, episodes,
                      max_episode_steps, seed, plot):
    """Zero a growing fraction of one network's weights and repair them by rejection sampling
    from MODEL (paper 004, algorithm 1 and figure 8). NETWORKS is a zoo or a network file."""
    from .generative.data import load_networks
    from .generative.repair import CRITERIA, RepairConfig, repair_experiment, summarize_repair
    from .generative.vae import WeightVAE

    vae = WeightVAE.load(model)
    if vae.conditional:
        raise WeightspaceError("repair samples from an unconditional model (trained without --conditional)")
    weights, _ = load_networks(networks, [index])
    _require_cartpole(weights)
    config = RepairConfig(candidates, keep, threshold, fill_missing=fill)
    criteria = CRITERIA if criterion == "both" else (criterion,)
    table = repair_experiment(vae, weights.flatten()[0], levels, criteria, config, seed, episodes, max_episode_steps)
    summary = summarize_repair(table, threshold)
    click.echo(f"original survival time {table['original_survival_time'].iloc[0]:.1f}")
    click.echo(summary.to_string(index=False, float_format=lambda v: f"{v:.2f}"))
    if plot:
        from .generative.figures import repair_curves

        repair_curves(summary, plot)
        click.echo(f"wrote {plot}")


# ------------------------------------------------------------------------------------------
@main.command("convergence")
@click.argument("networks", type=click.Path(exists=True))
@click.option("--networks", "indices", callback=int_list, default=None, metavar="0,1,...",
              help="Which networks (zoo rows, or positions in a network file) [default: all of a file].")
@click.option("--states", default=10000, show_default=True, type=click.IntRange(1), help="Reference states.")
@click.option("--seed", default=0, show_default=True, help="Seed of the reference states.")
@click.option("--max-episode-steps", default=200, show_default=True)
@click.option("--out", type=click.Path(dir_okay=False), default=None, help="Write every pair's CDs to this JSON file.")
def convergence(networks, indices, states, seed, max_episode_steps, out):
    """Convergence distance (paper 004, equation 7) between every pair of the chosen NETWORKS,
    per layer: how far matching units by their best partner is from a one-to-one matching."""
    import json
    from pathlib import Path

    from .analysis.convergence import all_pairs, compare_pairs, reference_states
    from .generative.data import load_networks
    from .rl.cartpole import CARTPOLE_NET

    if Path(networks).is_dir() and indices is None:
        raise click.UsageError("choose zoo rows with --networks 0,1,...")
    weights, _ = load_networks(networks, indices)
    _require_cartpole(weights)
    if weights.size < 2:
        raise WeightspaceError("convergence compares at least two networks")
    pairs = all_pairs(weights.size)
    comparison = compare_pairs(CARTPOLE_NET, weights, pairs, reference_states(states, seed, max_episode_steps))
    labels = list(indices) if indices is not None else list(range(weights.size))
    for layer, values in comparison.distances.items():
        click.echo(f"{layer:<7} CD over {len(pairs)} pairs: mean {values.mean():.3f}, std "
                   f"{values.std(ddof=1) if len(values) > 1 else 0.0:.3f}, min {values.min():.3f}, max {values.max():.3f}")
    if out:
        rows = [{"first": labels[i], "second": labels[j],
                 **{layer: float(comparison.distances[layer][p]) for layer in comparison.distances}}
                for p, (i, j) in enumerate(pairs)]
        Path(out).write_text(json.dumps({"reference_states": states, "seed": seed, "pairs": rows}, indent=2) + "\n")
        click.echo(f"wrote {out}")
    elif len(pairs) <= 20:
        for p, (i, j) in enumerate(pairs):
            click.echo(f"  {labels[i]:>5} vs {labels[j]:<5} " + "  ".join(
                f"{layer} {comparison.distances[layer][p]:.3f}" for layer in comparison.distances))


if __name__ == "__main__":
    main()
