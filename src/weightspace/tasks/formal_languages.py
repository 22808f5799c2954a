"""The formal-language task family of paper 000 (section 5.1).

``L(m_b, m_c, m_d) = { a^n b^(n+m_b) c^(n+m_c) d^(n+m_d) | n >= max(0, -min(m)) }`` with
m_b, m_c, m_d in {-3, ..., 2}: 216 languages. Sequences are BOS followed by 41 positions, the
string padded with EOS. Token ids follow the paper's published dataset: 0-3 = a-d, 4 = BOS,
5 = EOS. Everything here works on a population: ``params`` is ``(K, 3)``, one language per network.
"""

from __future__ import annotations

import itertools

import numpy as np
import torch
import torch.nn.functional as F

from .. import counter_rng

VOCABULARY = {"a": 0, "b": 1, "c": 2, "d": 3, "BOS": 4, "EOS": 5}
BOS, EOS = VOCABULARY["BOS"], VOCABULARY["EOS"]
VOCAB_SIZE = len(VOCABULARY)
SEQUENCE_LENGTH = 42  # BOS + 41 positions
M_VALUES = tuple(range(-3, 3))
#: n is drawn uniformly from [max(0, -min(m)), N_UPPER) (upper bound exclusive), so the longest
#: string (n = 8, all m = 2: 38 letters) always ends with at least one EOS inside the sequence.
N_UPPER = 9


def all_languages() -> list[tuple[int, int, int]]:
    """The 216 (m_b, m_c, m_d) triples in a fixed order."""
    return list(itertools.product(M_VALUES, repeat=3))


def minimum_n(params: torch.Tensor) -> torch.Tensor:
    """Smallest n of each language: max(0, -min(m_b, m_c, m_d)); ``params`` is (..., 3)."""
    return (-params.min(dim=-1).values).clamp(min=0)


def strings_from_n(params: torch.Tensor, n: torch.Tensor) -> torch.Tensor:
    """Token sequences (K, N, 42) for ``params`` (K, 3) and string parameters ``n`` (K, N)."""
    counts = torch.stack([n, n + params[:, None, 0], n + params[:, None, 1], n + params[:, None, 2]], -1)
    ends = counts.cumsum(-1)  # (K, N, 4): end position of each letter block
    positions = torch.arange(SEQUENCE_LENGTH - 1, device=n.device)
    # letter j where position < ends[j] for the first such j; EOS after the last block
    letter = (positions[None, None, :, None] >= ends[:, :, None, :]).sum(-1)
    body = torch.where(letter < 4, letter, torch.full_like(letter, EOS))
    bos = torch.full((*n.shape, 1), BOS, dtype=body.dtype, device=n.device)
    return torch.cat([bos, body], dim=-1)


def sample_strings(params: torch.Tensor, keys, stream: int, count: int) -> torch.Tensor:
    """``count`` random member strings per language: tokens (K, count, 42), int64."""
    low = minimum_n(params).cpu().numpy()
    n = counter_rng.integers(keys, stream, low, np.full_like(low, N_UPPER), (count,))
    return strings_from_n(params, n.to(params.device))


def is_member(params: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """Exact membership of sampled sequences (K, N, 42) in each network's language: bool (K, N).

    The string is what follows BOS up to the first EOS; a sequence without EOS is not a member.
    """
    body = tokens[..., 1:]
    is_eos = body == EOS
    has_eos = is_eos.any(-1)
    positions = torch.arange(body.shape[-1], device=body.device)
    first_eos = torch.where(is_eos, positions, body.shape[-1]).min(-1).values
    inside = positions < first_eos[..., None]
    letters_only = ~((body > 3) & inside).any(-1)
    ordered = ~((body[..., 1:] < body[..., :-1]) & inside[..., 1:]).any(-1)
    counts = torch.stack([((body == j) & inside).sum(-1) for j in range(4)], -1)
    m = params[:, None, :]
    matches = (counts[..., 1:] - counts[..., :1] == m).all(-1)
    long_enough = counts[..., 0] >= minimum_n(params)[:, None]
    return has_eos & letters_only & ordered & matches & long_enough


def training_batch(params: torch.Tensor, keys, step: int, batch_size: int):
    """Teacher-forcing batch: one-hot inputs (K, B, 41, 6) and next-token targets (K, B, 41)."""
    tokens = sample_strings(params, keys, counter_rng.stream_id("batch", step), batch_size)
    return F.one_hot(tokens[..., :-1], VOCAB_SIZE).float(), tokens[..., 1:]


@torch.no_grad()
def sample_from_model(architecture, weights, keys, stream: int, count: int, keep_logprobs=None):
    """Autoregressive samples of every network: tokens (K, count, 42) and log-probs (K, keep, 41, 6).

    ``logprobs[k, r, t]`` is network k's log-distribution of ``tokens[k, r, t + 1]`` given
    ``tokens[k, r, :t + 1]``. All networks and samples advance together, one step at a time.
    """
    K = weights.size
    device = weights.device
    uniforms = counter_rng.uniform(keys, stream, (count, SEQUENCE_LENGTH - 1), device)
    token = torch.full((K, count), BOS, dtype=torch.long, device=device)
    state = architecture.initial_state(K, count, device)
    tokens, logprobs = [token], []
    for t in range(SEQUENCE_LENGTH - 1):
        out, state = architecture.step(weights, F.one_hot(token, VOCAB_SIZE).float(), state)
        logp = torch.log_softmax(out, dim=-1)
        cdf = logp.exp().cumsum(-1)
        token = (uniforms[:, :, t, None] > cdf).sum(-1).clamp(max=VOCAB_SIZE - 1)
        tokens.append(token)
        logprobs.append(logp[:, :keep_logprobs])
    return torch.stack(tokens, -1), torch.stack(logprobs, 2)


def evaluate(architecture, weights, params, keys, step: int, samples: int = 1000, rollouts: int = 100):
    """Performance (fraction of ``samples`` sampled strings in the language) and stored rollouts."""
    tokens, logprobs = sample_from_model(architecture, weights, keys,
                                         counter_rng.stream_id("evaluate", step), samples,
                                         keep_logprobs=rollouts)
    performance = is_member(params, tokens).float().mean(-1)
    return {"performance": performance}, {
        "tokens": tokens[:, :rollouts].contiguous(),
        "logprobs": logprobs,
    }
