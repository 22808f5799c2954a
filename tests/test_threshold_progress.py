"""experiments/threshold_progress.py: a threshold-trained build's progress saves, read back."""

from __future__ import annotations

import json

import torch
from safetensors.torch import save_file

from experiment_scripts import experiment_script


def test_each_save_gives_its_step_losses_and_counts(tmp_path, capsys):
    progress = experiment_script("threshold_progress")
    zoo = tmp_path / "steps" / "zoo" / "flip-flop" / "channels=2" / "KEY" / "zoo"
    (zoo / "progress").mkdir(parents=True)
    tensors = {
        "last_loss": torch.tensor([0.004, 0.0005, 0.002, 0.0008]),
        "state.converged_epoch": torch.tensor([-1, 40, -1, 52]),
        "state.active": torch.tensor([True, False, True, True]),
    }
    save_file(tensors, zoo / "progress" / "shard-00000.safetensors", {"step": "9000", "recorded": "[]"})
    (zoo / "progress" / "shard-00001.safetensors").write_bytes(b"half-written")  # skipped, not an error

    assert progress.main([str(tmp_path)]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(rows) == 1
    row = rows[0]
    assert row["zoo"] == "steps/zoo/flip-flop/channels=2/KEY/zoo" and row["step"] == 9000
    assert (row["converged"], row["training"], row["networks"]) == (2, 3, 4)
    assert abs(row["loss_max"] - 0.004) < 1e-9 and abs(row["loss_median"] - 0.0008) < 1e-9  # torch's lower median

    assert progress.main([str(tmp_path / "missing")]) == 2
    assert capsys.readouterr().err.strip().count("\n") == 0
