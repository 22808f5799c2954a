"""Population training: batched AdamW, the paper's schedule, checkpoints."""

from .optim import PAPER_SCHEDULE, PopulationAdamW, piecewise_linear
from .trainer import PAPER_CHECKPOINTS, PopulationTrainer, default_checkpoints, sequence_cross_entropy

__all__ = [
    "PAPER_CHECKPOINTS",
    "PAPER_SCHEDULE",
    "PopulationAdamW",
    "PopulationTrainer",
    "default_checkpoints",
    "piecewise_linear",
    "sequence_cross_entropy",
]
