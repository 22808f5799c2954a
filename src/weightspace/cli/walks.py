"""Paper 004's uses of a trained CartPoleGen: latent walks (figure 7) and weight repair (figure 8)."""

from __future__ import annotations

import click

from ..errors import WeightspaceError
from .options import config_options, given_values


def _levels(ctx, param, value):
    try:
        levels = tuple(float(v) for v in value.split(",") if v.strip())
    except ValueError:
        raise click.BadParameter(f"expected comma-separated fractions like 0,0.5,1, got {value!r}") from None
    if not levels or any(not 0 <= v <= 1 for v in levels):
        raise click.BadParameter("degradation levels are fractions in [0, 1]")
    return levels


@click.command("interpolate")
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


@click.command("repair")
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
@click.option("--episodes", default=100, show_default=True)
@click.option("--max-episode-steps", default=200, show_default=True)
@click.option("--seed", default=0, show_default=True)
@click.option("--plot", type=click.Path(dir_okay=False), default=None, help="Draw figure 8 to this PNG.")
def generative_repair(model, networks, index, levels, criterion, episodes, max_episode_steps, seed, plot, **algorithm):
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
    config = RepairConfig(**given_values(algorithm))
    criteria = CRITERIA if criterion == "both" else (criterion,)
    table = repair_experiment(vae, weights.flatten()[0], levels, criteria, config, seed, episodes, max_episode_steps)
    summary = summarize_repair(table, config.threshold)
    click.echo(f"original survival time {table['original_survival_time'].iloc[0]:.1f}")
    click.echo(summary.to_string(index=False, float_format=lambda v: f"{v:.2f}"))
    if plot:
        from ..generative.figures import repair_curves

        repair_curves(summary, plot)
        click.echo(f"wrote {plot}")


def _repair_options() -> list[click.Option]:
    """Algorithm 1's settings: RepairConfig's fields, defaults and help."""
    from ..generative.repair import RepairConfig

    return config_options(RepairConfig)


_after = [p.name for p in generative_repair.params].index("criterion") + 1
generative_repair.params[_after:_after] = _repair_options()
