"""Emulator inputs and targets from a zoo's stored rollouts."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def rollout_io(kind: str, rollouts: dict[str, torch.Tensor], input_size: int):
    """(inputs (..., T, input_size), target log-distributions (..., T, output_size)).

    Formal languages: the subject read ``tokens[:, :-1]`` (one-hot) and produced
    ``logprobs[:, t]`` for the next token; digits: the subject read ``inputs``."""
    if kind == "formal-languages":
        return F.one_hot(rollouts["tokens"][..., :-1], input_size).float(), rollouts["logprobs"]
    if kind == "digits":
        return rollouts["inputs"], rollouts["logprobs"]
    raise ValueError(f"no emulation data for {kind!r} zoos")
