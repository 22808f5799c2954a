"""The tiled sequential digits LSTM zoo of paper 000 (section 5.2, appendix C)."""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import pandas as pd
import torch

from .. import counter_rng
from ..networks import LSTM
from ..tasks import digits
from .builder import ShardTask


@lru_cache(maxsize=2)
def _data(data_dir):
    return digits.load_digits(data_dir)


class DigitsZoo:
    name = "digits"
    default_population = 32  # each network holds its own rotated copy of the images

    @staticmethod
    def tile_size(config) -> int:
        return config.tile_size or (4 if config.data_dir else 2)

    def data(self, config) -> digits.DigitData:
        return _data(config.data_dir)

    def architecture(self, config):
        tile = self.tile_size(config)
        return LSTM(tile * tile, config.hidden_size, config.num_layers, digits.NUM_CLASSES)

    def plan(self, config) -> pd.DataFrame:
        """One row per run: a rotation angle uniform in [0, 360); OOD = [312, 360); of the other
        runs a fixed 15% (by a draw keyed to the zoo seed) is validation."""
        self.data(config)  # fail early on missing or malformed files
        key = [config.seed]
        angles = counter_rng.uniform(key, counter_rng.stream_id("angle"), (config.models,))[0].double().numpy() * 360
        draw = counter_rng.uniform(key, counter_rng.stream_id("split"), (config.models,))[0].numpy()
        split = np.where(angles >= digits.OOD_ANGLE, "ood", np.where(draw < digits.VALIDATION_FRACTION, "val", "train"))
        return pd.DataFrame({
            "run_id": np.arange(config.models),
            "split": split,
            "seed": counter_rng.derive_seeds(config.seed, config.models),
            "learning_rate": np.full(config.models, config.learning_rate),
            "weight_decay": np.full(config.models, config.weight_decay),
            "angle": angles,
        })

    def shard_task(self, runs, config, device) -> ShardTask:
        task = digits.RotatedDigitsTask(self.data(config), runs["angle"].to_numpy(), runs["seed"].to_numpy(),
                                        self.tile_size(config), device, train_eval_images=config.samples)
        return ShardTask(lambda step: task.batch(step, config.batch_size),
                         lambda architecture, weights, step: task.evaluate(architecture, weights, config.rollouts))

    @staticmethod
    def store_rollout(name, tensor):
        return tensor.to(torch.float16)

    def task_description(self, config) -> dict:
        data = self.data(config)
        tile = self.tile_size(config)
        n_tiles = (data.image_size // tile) ** 2
        return {
            "family": "classify digits rotated by the run's angle, shown as a sequence of tiles",
            "data": data.source,
            "note": None if config.data_dir else "built-in scikit-learn 8x8 digits (no --mnist-dir given)",
            "train_images": len(data.train_labels),
            "val_images": len(data.val_labels),
            "image_size": data.image_size,
            "tile_size": tile,
            "sequence": f"BOS + {n_tiles} tiles in raster order + EOS = {n_tiles + 2} inputs of {tile * tile} values",
            "bos_value": digits.BOS_VALUE,
            "eos_value": digits.EOS_VALUE,
            "loss": "mean cross-entropy of the predictions after every input",
            "accuracy": "validation accuracy of the prediction after EOS",
            "rotation": "counter-clockwise about the image centre, bilinear, zeros outside",
        }

    def split_description(self, config) -> dict:
        return {"rule": f"by run angle: ood = [{digits.OOD_ANGLE:g}, 360); of the rest "
                        f"{digits.VALIDATION_FRACTION:.0%} val (fixed draw keyed to the zoo seed), others train"}

    def rollout_description(self, config) -> dict:
        data = self.data(config)
        tile = self.tile_size(config)
        length = (data.image_size // tile) ** 2 + 2
        return {
            "count": config.rollouts,
            "tensors": {
                "inputs": {"shape": [config.rollouts, length, tile * tile], "stored_dtype": "float16",
                           "meaning": "the first validation images, rotated by the run's angle, framed by BOS/EOS"},
                "logprobs": {"shape": [config.rollouts, length, digits.NUM_CLASSES], "stored_dtype": "float16",
                             "meaning": "logprobs[r, t] = the network's log-distribution over digits after input t"},
            },
        }
