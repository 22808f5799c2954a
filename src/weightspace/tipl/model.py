"""TIPL's model: a GPT-style causal transformer over temporal-SVD tokens, its loss, training and rollout.

The token history u_0..u_{t-1} goes in; the output at position t-1 is the prediction of u_t
(paper 003, equation 1). The architecture and optimiser are Decision Transformer's gym
experiment (Chen et al. 2021, the code TIPL was built on): width 128, 3 layers, 1 head, context
20, dropout 0.1, MLP of 4x width with ReLU, a LayerNorm on the embedded tokens, AdamW (learning
rate 1e-4, weight decay 1e-4 on every parameter), linear warmup, gradient norm clipped to 0.25,
batches of 64 segments. The blocks are GPT-2's (pre-LayerNorm). DT's timestep embedding becomes
a learned embedding of the position inside the context window: a window can start anywhere in
a trajectory, so the model sees where a token sits among the ones it reads, not how far
training has gone.

Two choices the paper leaves open:

- Tokens are standardised per coordinate with the training tokens' mean and standard deviation
  (stored in the model, as DT normalises states). A row of U has entries of order 1/sqrt(N), and
  a linear embedding of such small, nearly equal numbers starts out unable to tell them apart.
- The loss is the weight-space MSE (:func:`weight_space_mse`), as equation 1 says, but the
  optimiser sees it divided by one constant: copy-last's weight-space MSE on the training
  tokens. Per-parameter weight changes between PPO snapshots are tiny, and at that scale Adam's
  epsilon damps the updates and DT's gradient clip never acts; in these units 1 means "as good
  as repeating the last token". :func:`train_tipl` returns the unscaled weight-space MSE.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import safe_open
from torch import nn
from torch.nn.utils.rnn import pad_sequence
from tqdm.auto import tqdm

from .. import storage
from ..errors import ConfigError
from ..training.optim import load_optimizer_tensors, optimizer_tensors

ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU}


@dataclass(frozen=True)
class TIPLConfig:
    """The model and its training. Defaults: Decision Transformer's gym experiment, except the
    number of steps (DT: 10 x 10^4 with 10^4 warmup; TIPL: 50 x 10^4) and its warmup."""

    width: int = field(default=128, metadata={"help": "Embedding width of the transformer."})
    layers: int = field(default=3, metadata={"help": "Transformer blocks."})
    heads: int = field(default=1, metadata={"help": "Attention heads per block (must divide width)."})
    context: int = field(
        default=20, metadata={"help": "Tokens the model reads (DT's K); training segments have this length."}
    )
    dropout: float = field(default=0.1, metadata={"help": "Dropout on embeddings, attention and residuals."})
    activation: str = field(
        default="relu", metadata={"help": "MLP nonlinearity: relu (DT's gym experiment) or gelu (GPT-2)."}
    )
    learning_rate: float = field(default=1e-4, metadata={"help": "AdamW peak learning rate."})
    weight_decay: float = field(default=1e-4, metadata={"help": "AdamW weight decay (on every parameter, as DT)."})
    batch_size: int = field(default=64, metadata={"help": "Trajectory segments per gradient step."})
    steps: int = field(default=2000, metadata={"help": "Gradient steps."})
    warmup: int = field(default=200, metadata={"help": "Steps of linear learning-rate warmup (DT's LambdaLR)."})
    gradient_clip: float = field(default=0.25, metadata={"help": "Maximum gradient norm (DT's)."})
    target: str = field(
        default="next",
        metadata={
            "help": "next: the head outputs the next token (the paper); change: it outputs the change from the "
            "current token, which is added to it (a residual forecaster)."
        },
    )
    seed: int = field(default=0, metadata={"help": "Initialisation, segment sampling and dropout."})

    def __post_init__(self):
        problems = [
            f"{name} must be >= 1 (got {getattr(self, name)})"
            for name in ("width", "layers", "heads", "context", "batch_size", "warmup")
            if getattr(self, name) < 1
        ]
        if self.steps < 0:
            problems.append(f"steps must be >= 0 (got {self.steps})")
        if self.heads >= 1 and self.width % self.heads:
            problems.append(f"heads ({self.heads}) must divide width ({self.width})")
        if not 0 <= self.dropout < 1:
            problems.append(f"dropout must lie in [0, 1) (got {self.dropout})")
        if self.target not in ("next", "change"):
            problems.append(f"target must be next or change (got {self.target!r})")
        if self.activation not in ACTIVATIONS:
            problems.append(f"activation must be one of {', '.join(ACTIVATIONS)} (got {self.activation!r})")
        if not (self.learning_rate > 0 and self.weight_decay >= 0 and self.gradient_clip > 0):
            problems.append("learning_rate and gradient_clip must be > 0 and weight_decay >= 0")
        if problems:
            raise ConfigError("; ".join(problems))


class CausalSelfAttention(nn.Module):
    def __init__(self, config: TIPLConfig):
        super().__init__()
        self.heads = config.heads
        self.dropout = config.dropout
        self.query_key_value = nn.Linear(config.width, 3 * config.width)
        self.projection = nn.Linear(config.width, config.width)
        self.residual_dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, length, width = x.shape
        query, key, value = (
            part.view(batch, length, self.heads, width // self.heads).transpose(1, 2)
            for part in self.query_key_value(x).split(width, dim=-1)
        )
        attended = nn.functional.scaled_dot_product_attention(
            query, key, value, is_causal=True, dropout_p=self.dropout if self.training else 0.0
        )
        return self.residual_dropout(self.projection(attended.transpose(1, 2).reshape(batch, length, width)))


class Block(nn.Module):
    """GPT-2's block: x + attention(LayerNorm(x)), then x + MLP(LayerNorm(x))."""

    def __init__(self, config: TIPLConfig):
        super().__init__()
        self.attention_norm = nn.LayerNorm(config.width)
        self.attention = CausalSelfAttention(config)
        self.mlp_norm = nn.LayerNorm(config.width)
        self.mlp = nn.Sequential(
            nn.Linear(config.width, 4 * config.width),
            ACTIVATIONS[config.activation](),
            nn.Linear(4 * config.width, config.width),
            nn.Dropout(config.dropout),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attention(self.attention_norm(x))
        return x + self.mlp(self.mlp_norm(x))


class CausalTransformer(nn.Module):
    """Tokens (B, L, d) -> predictions (B, L, d), L <= context; output t predicts token t + 1 and
    sees tokens 0..t only."""

    def __init__(self, token_size: int, config: TIPLConfig = TIPLConfig()):
        super().__init__()
        self.config = config
        self.token_size = token_size
        self.embed_token = nn.Linear(token_size, config.width)
        self.embed_position = nn.Embedding(config.context, config.width)
        self.embed_norm = nn.LayerNorm(config.width)  # DT's embed_ln
        self.embed_dropout = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.layers))
        self.final_norm = nn.LayerNorm(config.width)
        self.head = nn.Linear(config.width, token_size)
        self.register_buffer("token_mean", torch.zeros(token_size))
        self.register_buffer("token_scale", torch.ones(token_size))
        self.register_buffer("change_scale", torch.ones(token_size))
        self.apply(_gpt2_init)

    def fit_standardization(self, sequences: Sequence[torch.Tensor]) -> None:
        """Per-coordinate mean and standard deviation of all training tokens (a constant coordinate keeps scale 1)."""
        stacked = torch.cat(list(sequences)).to(self.token_mean.device, torch.float64)
        scale = stacked.std(0) if len(stacked) > 1 else torch.ones_like(stacked[0])
        changes = torch.cat([torch.diff(s.to(stacked), dim=0) for s in sequences])
        change_scale = changes.std(0) if len(changes) > 1 else torch.ones_like(stacked[0])
        with torch.no_grad():
            self.token_mean.copy_(stacked.mean(0))
            self.token_scale.copy_(torch.where(scale > 0, scale, torch.ones_like(scale)))
            self.change_scale.copy_(torch.where(change_scale > 0, change_scale, torch.ones_like(change_scale)))

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        if tokens.ndim != 3 or tokens.shape[2] != self.token_size or not 1 <= tokens.shape[1] <= self.config.context:
            raise ConfigError(
                f"expected tokens (B, 1..{self.config.context}, {self.token_size}), got {tuple(tokens.shape)}"
            )
        x = self.embed_token((tokens - self.token_mean) / self.token_scale)
        x = self.embed_dropout(self.embed_norm(x + self.embed_position.weight[: tokens.shape[1]]))
        for block in self.blocks:
            x = block(x)
        if self.config.target == "change":
            return tokens + self.head(self.final_norm(x)) * self.change_scale
        return self.head(self.final_norm(x)) * self.token_scale + self.token_mean


def _gpt2_init(module: nn.Module) -> None:
    """GPT-2's initialisation (as DT's transformer has): N(0, 0.02) weights, zero biases."""
    if isinstance(module, (nn.Linear, nn.Embedding)):
        nn.init.normal_(module.weight, std=0.02)
    if isinstance(module, nn.Linear) and module.bias is not None:
        nn.init.zeros_(module.bias)


def weight_space_mse(
    predicted_u: torch.Tensor, true_u: torch.Tensor, singular_values: torch.Tensor, num_parameters: int
) -> torch.Tensor:
    """Mean squared error per parameter between the decoded weights u S V^T of two token tensors (..., d).

    V has orthonormal columns, so ``||(u_hat - u) S V^T||^2 = ||(u_hat - u) * S||^2``: the decoded
    error is computed without the (P, d) factor. The squared error is summed over the d
    coordinates, averaged over every leading position and divided by P, which makes it the
    weight prediction error (WPE) of paper 003 for the part of the weights inside the kept
    subspace. ``singular_values`` is (d,) for one basis, or (B, 1, d) for one basis per sequence.
    """
    squared = ((predicted_u - true_u) * singular_values).square().sum(-1)
    return squared.mean() / num_parameters


def train_tipl(
    sequences: Sequence[torch.Tensor],
    scales: Sequence[torch.Tensor],
    num_parameters: int,
    config: TIPLConfig = TIPLConfig(),
    progress: bool = True,
    device="cpu",
    checkpoint=None,
    checkpoint_every: int = 1000,
) -> tuple[CausalTransformer, list[float]]:
    """Fit a :class:`CausalTransformer` to token trajectories ``sequences`` (T_i, d) whose bases
    have singular values ``scales`` (d,) each (the same tensor repeated for a pooled basis).

    Each step draws ``batch_size`` segments: a trajectory uniformly, then a start s uniformly;
    the inputs are tokens s..s+L-1 and the targets s+1..s+L, with L = ``context``. Initialisation,
    sampling and dropout follow ``config.seed`` alone (the global RNG is left as it was), so the
    same inputs give the same weights. Returns the model (in eval mode) and each step's
    weight-space MSE.

    ``checkpoint``: a ``.safetensors`` path where the whole training state (weights, AdamW's
    moments, the schedule, the sampling and dropout generators, the losses so far) is written
    atomically every ``checkpoint_every`` steps and at the end. A call that finds one continues
    from it: a run killed mid-way, or one asked for more steps, ends with the weights and losses
    of a run that never stopped (the schedule is warmup then constant, so it does not depend on
    the number of steps). A checkpoint of other settings or other data, or of more steps than
    asked for, is an error.
    """
    sequences, scales = _checked(sequences, scales, config)
    device = torch.device(device)
    token_size, length = sequences[0].shape[1], config.context
    padded, stacked_scales = pad_sequence(sequences, batch_first=True).to(device), torch.stack(scales).to(device)
    starts_available = torch.tensor([len(sequence) - length for sequence in sequences])
    offsets = torch.arange(length + 1)
    reference = copy_last_error(sequences, scales, num_parameters) or 1.0
    generator = torch.Generator().manual_seed(config.seed)
    losses: list[float] = []
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(config.seed)  # initialisation and dropout
        model = CausalTransformer(token_size, config).to(device)
        model.fit_standardization(sequences)
        model.train()
        optimizer = torch.optim.AdamW(model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
        schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: min((step + 1) / config.warmup, 1.0))
        state = None
        if checkpoint is not None:
            state = _TrainingState(checkpoint, _training_digest(sequences, scales, num_parameters, config), device)
            losses = state.restore(model, optimizer, schedule, generator, config.steps)
        bar = tqdm(
            total=config.steps, initial=len(losses), desc="TIPL", unit="step", disable=not progress, dynamic_ncols=True
        )
        while len(losses) < config.steps:
            which = torch.randint(len(sequences), (config.batch_size,), generator=generator)
            starts = (torch.rand(config.batch_size, generator=generator) * starts_available[which]).long()
            segments = padded[which.to(device)[:, None], (starts[:, None] + offsets).to(device)]
            predicted = model(segments[:, :-1])
            loss = weight_space_mse(
                predicted, segments[:, 1:], stacked_scales[which.to(device)][:, None], num_parameters
            )
            optimizer.zero_grad(set_to_none=True)
            (loss / reference).backward()
            nn.utils.clip_grad_norm_(model.parameters(), config.gradient_clip)
            optimizer.step()
            schedule.step()
            losses.append(float(loss.detach()))
            bar.update(1)
            bar.set_postfix(loss=f"{losses[-1]:.3g}")
            if state is not None and (len(losses) % checkpoint_every == 0 or len(losses) == config.steps):
                state.save(model, optimizer, schedule, generator, losses)
        bar.close()
    return model.eval(), losses


def _training_digest(sequences, scales, num_parameters: int, config: TIPLConfig) -> str:
    """What a checkpoint must have been trained on: the data and every setting but the number of steps."""
    digest = hashlib.blake2b(digest_size=16)
    settings = {k: v for k, v in dataclasses.asdict(config).items() if k != "steps"}
    digest.update(json.dumps({"settings": settings, "num_parameters": num_parameters}, sort_keys=True).encode())
    for tensor in (*sequences, *scales):
        digest.update(str(tuple(tensor.shape)).encode())
        digest.update(tensor.numpy().tobytes())
    return digest.hexdigest()


class _TrainingState:
    """The whole state of :func:`train_tipl` in one safetensors file: tensors for the weights,
    AdamW's moments, the generators and the losses; JSON metadata for the rest."""

    def __init__(self, path, digest: str, device: torch.device):
        self.path, self.digest, self.device = Path(path), digest, device

    def restore(self, model, optimizer, schedule, generator, steps: int) -> list[float]:
        """Load the checkpoint into the objects given, if there is one; return the losses so far."""
        if not self.path.exists():
            return []
        with safe_open(self.path, "pt") as f:
            metadata = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
        if metadata.get("digest") != self.digest:
            raise ConfigError(
                f"{self.path} holds TIPL training of other settings or other data; remove it to train afresh"
            )
        losses = tensors["losses"].tolist()
        if len(losses) > steps:
            raise ConfigError(f"{self.path} is {len(losses)} steps in, past the {steps} steps asked for")
        model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
        load_optimizer_tensors(optimizer, tensors, json.loads(metadata["param_groups"]))
        schedule.load_state_dict({**json.loads(metadata["schedule"]), "lr_lambdas": [None]})
        generator.set_state(tensors["rng.sampling"])
        torch.set_rng_state(tensors["rng.cpu"])
        if self.device.type == "cuda":
            torch.cuda.set_rng_state(tensors["rng.cuda"], self.device)
        return losses

    def save(self, model, optimizer, schedule, generator, losses: list[float]) -> None:
        tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
        moments, groups = optimizer_tensors(optimizer)
        tensors.update(moments)
        tensors["rng.sampling"] = generator.get_state()
        tensors["rng.cpu"] = torch.get_rng_state()
        if self.device.type == "cuda":
            tensors["rng.cuda"] = torch.cuda.get_rng_state(self.device)
        tensors["losses"] = torch.tensor(losses, dtype=torch.float64)
        schedule_state = {k: v for k, v in schedule.state_dict().items() if k != "lr_lambdas"}
        metadata = {
            "digest": self.digest,
            "param_groups": json.dumps(groups),
            "schedule": json.dumps(schedule_state),
        }
        storage.write_tensors(self.path, tensors, metadata)


def copy_last_error(sequences: Sequence[torch.Tensor], scales: Sequence[torch.Tensor], num_parameters: int) -> float:
    """Weight-space MSE of predicting each token by the one before it, over all consecutive pairs."""
    total = sum(
        float(((sequence[1:] - sequence[:-1]) * scale).square().sum()) for sequence, scale in zip(sequences, scales)
    )
    return total / sum(len(sequence) - 1 for sequence in sequences) / num_parameters


def _checked(sequences, scales, config: TIPLConfig) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    if not sequences:
        raise ConfigError("TIPL needs at least one training trajectory")
    if len(scales) != len(sequences):
        raise ConfigError(f"{len(sequences)} token trajectories but {len(scales)} singular-value vectors")
    token_size = sequences[0].shape[-1]
    for i, (sequence, scale) in enumerate(zip(sequences, scales)):
        if sequence.ndim != 2 or sequence.shape[1] != token_size or tuple(scale.shape) != (token_size,):
            raise ConfigError(
                f"trajectory {i}: expected tokens (T, {token_size}) and singular values "
                f"({token_size},), got {tuple(sequence.shape)} and {tuple(scale.shape)}"
            )
        if len(sequence) < config.context + 1:
            raise ConfigError(
                f"trajectory {i} has {len(sequence)} tokens; training segments need context + 1 = "
                f"{config.context + 1} (lower the context or drop short trajectories)"
            )
    return (
        [sequence.detach().float().cpu() for sequence in sequences],
        [scale.detach().float().cpu() for scale in scales],
    )


@torch.no_grad()
def rollout(model: CausalTransformer, history: torch.Tensor, horizon: int) -> torch.Tensor:
    """Predict ``horizon`` tokens after ``history`` (t, d) or (B, t, d), feeding each prediction
    back in and reading the last ``context`` tokens: (horizon, d) or (B, horizon, d)."""
    single = history.ndim == 2
    tokens = history[None] if single else history
    if tokens.ndim != 3 or tokens.shape[1] < 1:
        raise ConfigError(f"expected a history (t, d) or (B, t, d) with t >= 1, got {tuple(history.shape)}")
    was_training = model.training
    model.eval()
    parameter = next(model.parameters())
    tokens = tokens.to(parameter.device, parameter.dtype)
    predictions = []
    for _ in range(horizon):
        following = model(tokens[:, -model.config.context :])[:, -1:]
        predictions.append(following)
        tokens = torch.cat([tokens, following], dim=1)
    model.train(was_training)
    out = torch.cat(predictions, dim=1) if predictions else tokens.new_zeros(len(tokens), 0, tokens.shape[2])
    return out[0] if single else out
