"""The formal-language task family of paper 000 (section 5.1, appendix C): LSTM language models.

``L(m_b, m_c, m_d) = { a^n b^(n+m_b) c^(n+m_c) d^(n+m_d) | n >= max(0, -min(m)) }`` with
m_b, m_c, m_d in {-3, ..., 2}: 216 languages. Sequences are BOS followed by 41 positions, the
string padded with EOS. Token ids follow the paper's published dataset: 0-3 = a-d, 4 = BOS,
5 = EOS. Everything here works on a population: ``params`` is ``(K, 3)``, one language per network.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from .. import counter_rng
from .base import LSTMTaskConfig, ShardTask, Task

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
    tokens, logprobs = sample_from_model(
        architecture, weights, keys, counter_rng.stream_id("evaluate", step), samples, keep_logprobs=rollouts
    )
    performance = is_member(params, tokens).float().mean(-1)
    return {"performance": performance}, {
        "tokens": tokens[:, :rollouts].contiguous(),
        "logprobs": logprobs,
    }


# --- the task family ------------------------------------------------------------------------------
#: OOD languages: |m_b| + |m_c| + |m_d| <= this (25 of 216 languages, 11.6%; the next threshold
#: would give 60 = 27.8%, further from the paper's "about 15%").
OOD_MAX_ABS_SUM = 2
VALIDATION_FRACTION = 0.15  # of the remaining languages
SPLIT_SEED = 0  # the split is the same for every zoo seed
#: the paper's probing sequence length for formal languages
PROBE_LENGTH = 22


def language_splits() -> dict[tuple[int, int, int], str]:
    """Split of every language: 'ood' (smallest |m| sums), then a fixed 'val'/'train' split."""
    languages = all_languages()
    ood = [m for m in languages if sum(abs(v) for v in m) <= OOD_MAX_ABS_SUM]
    rest = [m for m in languages if m not in set(ood)]
    order = np.random.default_rng(SPLIT_SEED).permutation(len(rest))
    n_val = round(VALIDATION_FRACTION * len(rest))
    val = {rest[i] for i in order[:n_val]}
    return {m: "ood" if m in set(ood) else "val" if m in val else "train" for m in languages}


@dataclass(frozen=True)
class FormalLanguagesConfig(LSTMTaskConfig):
    """A formal-language zoo; the defaults are the paper's (appendix C)."""

    samples: int = field(default=1000, metadata={"help": "Sampled strings per checkpoint for performance."})
    rollouts: int = field(default=100, metadata={"help": "Rollouts stored per checkpoint (at most samples)."})
    languages: str = field(
        default="uniform",
        metadata={
            "help": "How runs get their language: uniform (drawn independently, the paper) or each "
            "(every language once per 216 runs, in a seeded order)."
        },
    )

    def problems(self) -> list[str]:
        problems = super().problems()
        if self.languages not in ("uniform", "each"):
            problems.append(f"languages must be uniform or each (got {self.languages!r})")
        if self.rollouts > self.samples:
            problems.append(f"rollouts ({self.rollouts}) cannot exceed samples ({self.samples})")
        return problems


class FormalLanguages(Task):
    """One LSTM per run learns one language L(m_b, m_c, m_d) of the 216."""

    name = "formal-languages"
    summary = "LSTM language models of L(m_b, m_c, m_d) = a^n b^(n+m_b) c^(n+m_c) d^(n+m_d) (paper 000)"
    config_class = FormalLanguagesConfig
    split_key = "task_id"
    plot_columns = ("task_id", "performance")
    oracle_columns = ("m_b", "m_c", "m_d", "performance")
    legacy_config_keys = {"data_dir": None, "tile_size": None, "max_episode_steps": None}

    def architecture(self, config):
        from ..networks import LSTM

        return LSTM(VOCAB_SIZE, config.hidden_size, config.num_layers, VOCAB_SIZE)

    def plan(self, config) -> pd.DataFrame:
        """One row per run: its language (``languages``: drawn uniformly, or each in turn), seed,
        hyperparameters and split."""
        languages = all_languages()
        if config.languages == "each":  # every language once per len(languages) runs, in a seeded order
            draw = counter_rng.uniform([config.seed], counter_rng.stream_id("language order"), (len(languages),))
            task_ids = np.argsort(draw[0].numpy(), kind="stable")[np.arange(config.models) % len(languages)]
        else:
            task_ids = counter_rng.integers(
                [config.seed], counter_rng.stream_id("task"), 0, len(languages), (config.models,)
            )[0].numpy()
        splits = language_splits()
        params = np.array([languages[t] for t in task_ids]).reshape(-1, 3)
        return pd.DataFrame(
            {
                "run_id": np.arange(config.models),
                "split": [splits[languages[t]] for t in task_ids],
                "seed": counter_rng.derive_seeds(config.seed, config.models),
                "learning_rate": np.full(config.models, config.learning_rate),
                "weight_decay": np.full(config.models, config.weight_decay),
                "task_id": task_ids.astype(np.int64),
                "m_b": params[:, 0],
                "m_c": params[:, 1],
                "m_d": params[:, 2],
            }
        )

    @staticmethod
    def _params(table, device=None):
        return torch.tensor(table[["m_b", "m_c", "m_d"]].to_numpy(copy=True), dtype=torch.long, device=device)

    def shard_task(self, runs, config, device) -> ShardTask:
        params = self._params(runs, device)
        keys = runs["seed"].to_numpy()

        def batch(step):
            x, y = training_batch(params, keys, step, config.batch_size)
            return x.to(device), y.to(device)

        def evaluate_checkpoint(architecture, weights, step):
            return evaluate(architecture, weights, params, keys, step, samples=config.samples, rollouts=config.rollouts)

        return ShardTask(batch, evaluate_checkpoint)

    def store_rollout(self, name, tensor):
        return tensor.to(torch.uint8) if name == "tokens" else tensor.to(torch.float16)

    def describe(self, config) -> dict:
        splits = language_splits()
        return {
            "task": {
                "family": "L(m_b, m_c, m_d) = a^n b^(n+m_b) c^(n+m_c) d^(n+m_d), n >= max(0, -min(m))",
                "vocabulary": VOCABULARY,
                "sequence_length": SEQUENCE_LENGTH,
                "m_values": list(M_VALUES),
                "n_range": f"uniform integer in [max(0, -min(m)), {N_UPPER})",
                "performance": f"fraction of {config.samples} sampled strings that belong to the language",
            },
            "splits": {
                "rule": f"by language: ood = |m_b|+|m_c|+|m_d| <= {OOD_MAX_ABS_SUM}; of the rest "
                f"{VALIDATION_FRACTION:.0%} val (fixed permutation, seed {SPLIT_SEED}), others train",
                **{name: [list(m) for m, s in splits.items() if s == name] for name in ("train", "val", "ood")},
            },
            "rollouts": {
                "count": config.rollouts,
                "tensors": {
                    "tokens": {
                        "shape": [config.rollouts, SEQUENCE_LENGTH],
                        "stored_dtype": "uint8",
                        "meaning": "sampled sequences, BOS first",
                    },
                    "logprobs": {
                        "shape": [config.rollouts, SEQUENCE_LENGTH - 1, VOCAB_SIZE],
                        "stored_dtype": "float16",
                        "meaning": "logprobs[r, t] = log-distribution of tokens[r, t+1] given tokens[r, :t+1]",
                    },
                },
            },
        }

    # ---- reading -------------------------------------------------------------------------
    def task_io(self, zoo):
        from ..encoders.base import TaskIO

        config = zoo.spec.config
        return TaskIO(
            "categorical", config["input_size"], "categorical", config["output_size"], probe_length=PROBE_LENGTH
        )

    def emulation_data(self, zoo, rollouts):
        """The subject read ``tokens[:, :-1]`` (one-hot) and produced ``logprobs[:, t]`` for the next token."""
        return F.one_hot(rollouts["tokens"][..., :-1], VOCAB_SIZE).float(), rollouts["logprobs"]

    def emulated_performance(self, run, zoo, indices, z, samples, seed):
        """Performance of the emulator's own samples (membership in the network's language)."""
        table = zoo.table.iloc[indices]
        generator = torch.Generator().manual_seed(seed)
        tokens = run.emulator.sample_tokens(z, BOS, SEQUENCE_LENGTH - 1, samples, generator)
        emulated = is_member(self._params(table), tokens).float().mean(1).numpy()
        return table["performance"].to_numpy(), emulated

    def targets(self, zoo) -> list:
        """The task as a three-hot vector over (m_b, m_c, m_d), and performance (paper 000, section 6.2)."""
        from ..downstream.targets import Regression, ThreeHot

        return [
            ThreeHot(
                "task",
                ("m_b", "m_c", "m_d"),
                M_VALUES,
                chance={"exact_accuracy": 1 / len(all_languages()), "parameter_accuracy": 1 / len(M_VALUES)},
            ),
            Regression("performance", ("performance",)),
        ]
