"""Paper 004's CartPoleGen commands: train, sample, interpolate, repair."""

from __future__ import annotations

import click

from ..errors import WeightspaceError
from . import walks
from .options import config_options, device_option, given_values


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


for _command in (walks.generative_interpolate, walks.generative_repair):
    generative.add_command(_command)
