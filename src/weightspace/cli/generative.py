"""Paper 004's CartPoleGen commands: train, sample, interpolate, repair."""

from __future__ import annotations

import click

from ..errors import WeightspaceError
from .options import config_options, device_option, given_values


def _levels(ctx, param, value):
    try:
        levels = tuple(float(v) for v in value.split(",") if v.strip())
    except ValueError:
        raise click.BadParameter(f"expected comma-separated fractions like 0,0.5,1, got {value!r}") from None
    if not levels or any(not 0 <= v <= 1 for v in levels):
        raise click.BadParameter("degradation levels are fractions in [0, 1]")
    return levels


@click.group()
def generative():
    """CartPoleGen (paper 004): a VAE over network weights, and what it is used for.

    \b
    Typical use:
      weightspace zoo build cartpole --out zoos/cp --models 2048 --steps 8000
      weightspace generative train zoos/cp --out models/cp-all
      weightspace generative train zoos/cp --out models/cp-good --group 4
      weightspace generative sample models/cp-good --count 200 --out good.safetensors
    """


def _train_command() -> click.Command:
    """``generative train``: the model's and the training's settings are VAEConfig's and
    VAETraining's fields, defaults and help."""
    from ..generative.vae import VAEConfig, VAETraining

    def callback(zoo, out, groups, conditional, step, split, device, overwrite, quiet, **given):
        """Train CartPoleGen on the networks of ZOO (one per run, at the last checkpoint)."""
        import dataclasses
        from pathlib import Path

        import torch

        from ..generative.data import final_networks
        from ..generative.vae import CONFIG_FILE, WeightVAE, train_vae
        from ..zoo.reader import load_zoo

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
        given = given_values(given)
        training_fields = {f.name for f in dataclasses.fields(VAETraining)}
        config = VAEConfig(
            input_size=source.spec.num_parameters,
            num_classes=4 if conditional else 0,
            **{k: v for k, v in given.items() if k not in training_fields},
        )
        training = VAETraining(**{k: v for k, v in given.items() if k in training_fields})
        model = WeightVAE(config, source.spec).to(device)
        history = train_vae(
            model, networks.flat.to(device), None if labels is None else labels.to(device), training, progress=not quiet
        )
        model.save(
            out,
            {
                "zoo": str(Path(zoo).resolve()),
                "networks": len(networks),
                "groups": list(groups) or "all",
                "conditional": conditional,
                "split": split,
                "step": int(networks.table["step"].iloc[0]),
                "training": dataclasses.asdict(training),
                "loss_by_epoch": history,
            },
        )
        click.echo(f"trained on {len(networks):,} networks; loss {history[0]:.1f} -> {history[-1]:.1f}; saved to {out}")

    params = [
        click.Argument(["zoo"], type=click.Path(exists=True, file_okay=False)),
        click.Option(
            ["--out"], required=True, type=click.Path(file_okay=False), help="Directory for the trained model."
        ),
        click.Option(
            ["--group", "groups"],
            type=click.IntRange(1, 4),
            multiple=True,
            help="Train only on networks of this survival-time group (1: 1-50, ..., 4: 151-200); "
            "repeatable. One model per group is the paper's conditional setting.",
        ),
        click.Option(
            ["--conditional"],
            is_flag=True,
            help="Train one VAE conditioned on the group instead (one-hot "
            "input, one decoder head and one sampling prior per group).",
        ),
        click.Option(
            ["--step"], type=int, default=None, help="Zoo checkpoint step to learn from [default: the last one]."
        ),
        click.Option(
            ["--split"],
            type=click.Choice(["train", "val", "all"]),
            default="all",
            show_default=True,
            help="Which runs of the zoo to learn from.",
        ),
        *config_options(VAEConfig, exclude=("input_size", "num_classes")),
        *config_options(VAETraining),
        click.Option(["--device"], default="cpu", show_default=True, callback=device_option),
        click.Option(["--overwrite"], is_flag=True, help="Replace a model already in --out."),
        click.Option(["--quiet"], is_flag=True, help="No progress bar."),
    ]
    return click.Command(
        "train",
        callback=callback,
        params=params,
        help="Train CartPoleGen on the networks of ZOO (one per run, at the last checkpoint).",
    )


generative.add_command(_train_command())


@generative.command("sample")
@click.argument("model", type=click.Path(exists=True, file_okay=False))
@click.option("--count", default=200, show_default=True, type=click.IntRange(1), help="Networks to generate.")
@click.option("--group", type=click.IntRange(1, 4), default=None, help="Conditional models: the group to sample.")
@click.option(
    "--out",
    type=click.Path(dir_okay=False),
    default=None,
    help="Write the networks (and their survival times) to this .safetensors file.",
)
@click.option("--evaluate/--no-evaluate", default=True, show_default=True, help="Measure survival times.")
@click.option("--episodes", default=100, show_default=True, help="Test episodes per survival time.")
@click.option("--max-episode-steps", default=200, show_default=True)
@click.option("--seed", default=0, show_default=True)
@click.option("--device", default="cpu", show_default=True, callback=device_option)
def generative_sample(model, count, group, out, evaluate, episodes, max_episode_steps, seed, device):
    """Generate new networks from a trained MODEL (latents from the prior, decoder means)."""
    from pathlib import Path

    import torch

    from ..generative.data import save_networks
    from ..generative.vae import WeightVAE
    from ..rl.cartpole import CARTPOLE_NET
    from ..rl.evaluation import survival_time
    from ..tasks.cartpole import require_cartpole_networks, survival_summary

    vae = WeightVAE.load(model, device)
    if vae.conditional and group is None:
        raise click.UsageError("this model is conditional: choose a --group")
    if not vae.conditional and group is not None:
        raise click.UsageError("--group applies to conditional models only (this one is not)")
    generator = torch.Generator(device=device).manual_seed(seed)
    weights = vae.population(vae.sample(count, None if group is None else group - 1, generator))
    extra = {}
    if evaluate:
        require_cartpole_networks(weights)
        survival = survival_time(CARTPOLE_NET, weights, episodes, max_episode_steps)
        extra["survival_time"] = survival
        click.echo(f"{count} networks: {survival_summary(survival.numpy())}")
    if out:
        save_networks(out, weights, extra, {"model": str(Path(model).resolve()), "group": str(group)})
        click.echo(f"wrote {out}")


@generative.command("interpolate")
@click.argument("model", type=click.Path(exists=True, file_okay=False))
@click.argument("networks", type=click.Path(exists=True))
@click.option(
    "--pair",
    nargs=2,
    type=int,
    required=True,
    metavar="I J",
    help="The two networks (zoo rows, or positions in a network file).",
)
@click.option("--points", default=20, show_default=True, type=click.IntRange(2))
@click.option("--max-alpha", default=1.5, show_default=True, help="Alphas run from 0 to this (> 1 extrapolates).")
@click.option("--episodes", default=100, show_default=True)
@click.option("--max-episode-steps", default=200, show_default=True)
@click.option("--plot", type=click.Path(dir_okay=False), default=None, help="Draw figure 7 to this PNG.")
def generative_interpolate(model, networks, pair, points, max_alpha, episodes, max_episode_steps, plot):
    """Walk from one network's embedding to another's (and beyond) in MODEL's latent space,
    next to the straight walk in weight space (paper 004, figure 7). NETWORKS is a zoo or a network file."""
    from ..generative.data import load_networks
    from ..generative.interpolation import alpha_grid, interpolate_pairs
    from ..generative.vae import WeightVAE
    from ..tasks.cartpole import require_cartpole_networks

    vae = WeightVAE.load(model)
    if vae.conditional:
        raise WeightspaceError("interpolation uses an unconditional model (trained without --conditional)")
    weights, _ = load_networks(networks, list(pair))
    require_cartpole_networks(weights)
    flat = weights.flatten()
    result = interpolate_pairs(vae, [(flat[0], flat[1])], alpha_grid(points, max_alpha), episodes, max_episode_steps)
    table = result.table.pivot(index="alpha", columns="space", values="survival_time")
    click.echo(table.to_string(float_format=lambda v: f"{v:.2f}"))
    if plot:
        from ..generative.figures import interpolation_panels

        interpolation_panels(
            result.table, [f"{pair[0]} -> {pair[1]}"], result.endpoint_survival, plot, max_episode_steps
        )
        click.echo(f"wrote {plot}")


@generative.command("repair")
@click.argument("model", type=click.Path(exists=True, file_okay=False))
@click.argument("networks", type=click.Path(exists=True))
@click.option(
    "--network", "index", type=int, required=True, help="The network to damage and repair (zoo row or position)."
)
@click.option(
    "--levels",
    default="0,0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8,0.9,1",
    show_default=True,
    callback=_levels,
    help="Fractions of weights zeroed.",
)
@click.option("--criterion", type=click.Choice(["missing", "whole", "both"]), default="both", show_default=True)
@click.option("--candidates", default=200, show_default=True, help="Networks sampled per level (gamma).")
@click.option("--keep", default=10, show_default=True, help="Candidates kept by the criterion (k).")
@click.option("--threshold", default=5.0, show_default=True, help="Success: survival time within this (epsilon).")
@click.option(
    "--fill",
    is_flag=True,
    help="A candidate only fills the missing weights instead of replacing the network (algorithm 1).",
)
@click.option("--episodes", default=100, show_default=True)
@click.option("--max-episode-steps", default=200, show_default=True)
@click.option("--seed", default=0, show_default=True)
@click.option("--plot", type=click.Path(dir_okay=False), default=None, help="Draw figure 8 to this PNG.")
def generative_repair(
    model,
    networks,
    index,
    levels,
    criterion,
    candidates,
    keep,
    threshold,
    fill,
    episodes,
    max_episode_steps,
    seed,
    plot,
):
    """Zero a growing fraction of one network's weights and repair them by rejection sampling
    from MODEL (paper 004, algorithm 1 and figure 8). NETWORKS is a zoo or a network file."""
    from ..generative.data import load_networks
    from ..generative.repair import CRITERIA, RepairConfig, repair_experiment, summarize_repair
    from ..generative.vae import WeightVAE
    from ..tasks.cartpole import require_cartpole_networks

    vae = WeightVAE.load(model)
    if vae.conditional:
        raise WeightspaceError("repair samples from an unconditional model (trained without --conditional)")
    weights, _ = load_networks(networks, [index])
    require_cartpole_networks(weights)
    config = RepairConfig(candidates, keep, threshold, fill_missing=fill)
    criteria = CRITERIA if criterion == "both" else (criterion,)
    table = repair_experiment(vae, weights.flatten()[0], levels, criteria, config, seed, episodes, max_episode_steps)
    summary = summarize_repair(table, threshold)
    click.echo(f"original survival time {table['original_survival_time'].iloc[0]:.1f}")
    click.echo(summary.to_string(index=False, float_format=lambda v: f"{v:.2f}"))
    if plot:
        from ..generative.figures import repair_curves

        repair_curves(summary, plot)
        click.echo(f"wrote {plot}")
