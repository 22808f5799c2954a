"""Generative models over network weights: CartPoleGen (paper 004), latent walks, weight repair."""

from .data import NetworkSet, final_networks, load_networks, save_networks
from .interpolation import InterpolationResult, alpha_grid, interpolate_pairs, latent_walk, weight_walk
from .repair import CRITERIA, RepairConfig, repair_experiment, summarize_repair
from .vae import VAEConfig, VAETraining, WeightVAE, train_vae

__all__ = [
    "CRITERIA",
    "InterpolationResult",
    "NetworkSet",
    "RepairConfig",
    "VAEConfig",
    "VAETraining",
    "WeightVAE",
    "alpha_grid",
    "final_networks",
    "interpolate_pairs",
    "latent_walk",
    "load_networks",
    "repair_experiment",
    "save_networks",
    "summarize_repair",
    "train_vae",
    "weight_walk",
]
