"""``weightspace convergence``: convergence distance between CartPole networks (paper 004)."""

from __future__ import annotations

import click

from .._click_types import int_list
from ..errors import WeightspaceError


@click.command("convergence")
@click.argument("networks", type=click.Path(exists=True))
@click.option(
    "--networks",
    "indices",
    callback=int_list,
    default=None,
    metavar="0,1,...",
    help="Which networks (zoo rows, or positions in a network file) [default: all of a file].",
)
@click.option("--states", default=10000, show_default=True, type=click.IntRange(1), help="Reference states.")
@click.option("--seed", default=0, show_default=True, help="Seed of the reference states.")
@click.option("--max-episode-steps", default=200, show_default=True)
@click.option("--out", type=click.Path(dir_okay=False), default=None, help="Write every pair's CDs to this JSON file.")
def convergence(networks, indices, states, seed, max_episode_steps, out):
    """Convergence distance (paper 004, equation 7) between every pair of the chosen NETWORKS,
    per layer: how far matching units by their best partner is from a one-to-one matching."""
    import json
    from pathlib import Path

    from ..analysis.convergence import all_pairs, compare_pairs, reference_states
    from ..generative.data import load_networks
    from ..rl.cartpole import CARTPOLE_NET
    from ..tasks.cartpole import require_cartpole_networks

    if Path(networks).is_dir() and indices is None:
        raise click.UsageError("choose zoo rows with --networks 0,1,...")
    weights, _ = load_networks(networks, indices)
    require_cartpole_networks(weights)
    if weights.size < 2:
        raise WeightspaceError("convergence compares at least two networks")
    pairs = all_pairs(weights.size)
    comparison = compare_pairs(CARTPOLE_NET, weights, pairs, reference_states(states, seed, max_episode_steps))
    labels = list(indices) if indices is not None else list(range(weights.size))
    for layer, values in comparison.distances.items():
        click.echo(
            f"{layer:<7} CD over {len(pairs)} pairs: mean {values.mean():.3f}, std "
            f"{values.std(ddof=1) if len(values) > 1 else 0.0:.3f}, min {values.min():.3f}, max {values.max():.3f}"
        )
    if out:
        rows = [
            {
                "first": labels[i],
                "second": labels[j],
                **{layer: float(comparison.distances[layer][p]) for layer in comparison.distances},
            }
            for p, (i, j) in enumerate(pairs)
        ]
        Path(out).write_text(json.dumps({"reference_states": states, "seed": seed, "pairs": rows}, indent=2) + "\n")
        click.echo(f"wrote {out}")
    elif len(pairs) <= 20:
        for p, (i, j) in enumerate(pairs):
            click.echo(
                f"  {labels[i]:>5} vs {labels[j]:<5} "
                + "  ".join(f"{layer} {comparison.distances[layer][p]:.3f}" for layer in comparison.distances)
            )
