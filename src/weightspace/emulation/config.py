"""The settings of one emulation pretraining run (paper 000, section 6.1), shared by the run
alone (:mod:`.pretrain`), its machinery (:mod:`.run`) and batched seeds (:mod:`.seeds`)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from ..errors import ConfigError
from .emulator import CRITERIA, LOSS_REDUCTIONS


@dataclass(frozen=True)
class PretrainConfig:
    """Paper 000 table 3 defaults: AdamW 1e-4, weight decay 0.01, clip 0.1, batch 64, z of 16;
    and the authors' published choices the paper leaves out (z normalised, encoder and emulator
    clipped separately, the emulator conditioned at its own width, the loss a mean over classes)."""

    encoder: str = field(
        default="",
        metadata={"help": "Encoder to train (or a reference: constant, oracle); an experiment sets it per step."},
    )
    steps: int = field(default=100_000, metadata={"help": "Maximum training steps (early stopping may end sooner)."})
    batch_size: int = field(default=64, metadata={"help": "Subject networks per step."})
    rollouts_per_network: int = field(
        default=10, metadata={"help": "Stored rollouts emulated per network and training step."}
    )
    val_rollouts: int = field(
        default=20, metadata={"help": "Stored rollouts per validation network (the first ones) in the validation loss."}
    )
    learning_rate: float = field(default=1e-4, metadata={"help": "AdamW learning rate."})
    weight_decay: float = field(default=0.01, metadata={"help": "AdamW weight decay."})
    gradient_clip: float = field(default=0.1, metadata={"help": "Gradient-norm clip."})
    separate_clipping: bool = field(
        default=True,
        metadata={
            "help": "Clip the encoder's and the emulator's gradients separately (the authors' code); "
            "false: one joint norm."
        },
    )
    normalize_embedding: bool = field(
        default=True, metadata={"help": "Divide z by its norm before the emulator (the authors' normalize_embedding)."}
    )
    condition_at_width: bool = field(
        default=True,
        metadata={
            "help": "Project the input and z to the emulator's width and add them at BOS (the authors' code); "
            "false: add z projected to the subject's input size."
        },
    )
    loss_reduction: str = field(
        default="mean",
        metadata={"help": "Reverse KL over the output classes: mean (the authors' and the paper's units) or sum."},
    )
    criterion: str = field(
        default="reverse-kl",
        metadata={
            "help": "Training loss for categorical outputs: reverse-kl, or total-variation (the loss of the "
            "authors' released configs); validation is always the reverse KL."
        },
    )
    eval_every: int = field(default=500, metadata={"help": "Steps between validation evaluations."})
    patience: int = field(default=10, metadata={"help": "Evaluations without improvement before stopping."})
    seed: int = field(default=0, metadata={"help": "Seed of initialisation and batches."})
    embedding_size: int = field(default=16, metadata={"help": "Size of z."})
    emulator_hidden: int = field(default=256, metadata={"help": "Hidden size of the 2-layer LSTM emulator."})
    encoder_options: dict = field(
        default_factory=dict, metadata={"help": "Encoder hyperparameters that replace the paper's."}
    )

    def __post_init__(self):
        problems = [
            f"{name} must be >= 1"
            for name in ("steps", "batch_size", "rollouts_per_network", "val_rollouts", "eval_every", "patience")
            if getattr(self, name) < 1
        ]
        if not isinstance(self.encoder, str):
            problems.append(f"encoder must be a name (got {self.encoder!r})")
        if self.loss_reduction not in LOSS_REDUCTIONS:
            problems.append(f"loss_reduction must be one of {list(LOSS_REDUCTIONS)} (got {self.loss_reduction!r})")
        if self.criterion not in CRITERIA:
            problems.append(f"criterion must be one of {list(CRITERIA)} (got {self.criterion!r})")
        if problems:
            raise ConfigError("; ".join(problems))

    def to_json(self) -> dict:
        return dataclasses.asdict(self)
