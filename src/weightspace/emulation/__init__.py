"""Emulation-based self-supervised pretraining of weight encoders (paper 000)."""

from .emulator import Emulator, emulation_loss
from .pretrain import PretrainConfig, Run, load_run, pretrain
from .references import REFERENCES
from .run import run_summary

__all__ = ["Emulator", "PretrainConfig", "REFERENCES", "Run", "emulation_loss", "load_run", "pretrain", "run_summary"]
