"""Analyses of paper 000: invariance matrix, embedding views, probe pictures and ablations, and
the pretraining/downstream loss correlation."""

import warnings

import numpy as np
import pandas as pd
import pytest
import torch

from weightspace.analysis.correlation import loss_correlations
from weightspace.analysis.embedding import plot_embedding_figure, plot_embeddings, project
from weightspace.analysis.invariance import SUBJECT_ROW, invariance_matrix, plot_invariance
from weightspace.analysis.probes import ablation_summary, plot_ablation, plot_probes, probe_sequences
from weightspace.encoders import TaskIO, build_encoder
from weightspace.networks import INCORRECT_VARIANTS, LSTM, VARIANTS
from weightspace.stats import pearson

ARCH = LSTM(6, 8, 2, 6)
TASK = TaskIO("categorical", 6, "categorical", 6, probe_length=10)
DIGITS_ARCH = LSTM(4, 8, 2, 10)
DIGITS_TASK = TaskIO("continuous", 4, "categorical", 10, probe_length=9)
SMALL = {
    "statistics": dict(hidden=32),
    "flattened": dict(hidden=32),
    "dwsnet": dict(channels=8, layers=2, head_hidden=16),
    "probing": dict(probes=3, probe_length=6, reader_hidden=24, reader_layers=1, mlp_hidden=16),
    "interactive": dict(probes=3, probe_length=6, reader_hidden=24, reader_layers=1, mlp_hidden=16),
}
UNCHANGED = 1e-4  # float rounding of permuted sums, relative to a different network


def png_written(path):
    return path.exists() and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# ---- invariance matrix (figures 17/18) ----------------------------------------------------------
@pytest.fixture(scope="module")
def matrix():
    torch.manual_seed(0)
    encoders = {
        name: build_encoder(name, ARCH, TASK, **SMALL[name])
        for name in ("statistics", "flattened", "dwsnet", "probing")
    }
    return invariance_matrix(
        ARCH, ARCH.init(range(4)), ARCH.init(range(10, 14)), encoders, TASK, torch.Generator().manual_seed(3)
    )


def test_invariance_matrix_layout(matrix):
    assert list(matrix.columns) == list(VARIANTS) and matrix.columns[0] == "correct"
    assert list(matrix.index) == [SUBJECT_ROW, "statistics", "flattened", "dwsnet", "probing"]
    assert np.isfinite(matrix.to_numpy()).all() and (matrix.to_numpy() >= 0).all()


def test_subject_network_changes_only_under_incorrect_permutations(matrix):
    subject = matrix.loc[SUBJECT_ROW]
    assert subject["correct"] < UNCHANGED
    for variant in INCORRECT_VARIANTS:
        assert subject[variant] > 0.05, variant


def test_encoder_rows_state_their_invariances(matrix):
    # statistics: blind to every permutation inside a tensor, correct or not (appendix E.2)
    assert (matrix.loc["statistics"] < UNCHANGED).all()
    # flattened weights: not even invariant to the correct permutation
    assert matrix.loc["flattened", "correct"] > 1e-2
    # DWSNet and probing: invariant to the correct permutation only
    for name in ("dwsnet", "probing"):
        assert matrix.loc[name, "correct"] < UNCHANGED
        assert (matrix.loc[name, list(INCORRECT_VARIANTS)] > 1e-3).all(), name


def test_invariance_matrix_is_deterministic_and_checks_inputs():
    encoders = {"statistics": build_encoder("statistics", ARCH, TASK, **SMALL["statistics"])}
    a, b = ARCH.init(range(3)), ARCH.init(range(5, 8))
    first = invariance_matrix(ARCH, a, b, encoders, TASK, torch.Generator().manual_seed(1))
    second = invariance_matrix(ARCH, a, b, encoders, TASK, torch.Generator().manual_seed(1))
    pd.testing.assert_frame_equal(first, second)
    with pytest.raises(ValueError, match="other network"):
        invariance_matrix(ARCH, a, ARCH.init(range(2)), encoders, TASK)
    digits = invariance_matrix(DIGITS_ARCH, DIGITS_ARCH.init(range(3)), DIGITS_ARCH.init(range(5, 8)), {}, DIGITS_TASK)
    assert digits.loc[SUBJECT_ROW, "correct"] < UNCHANGED and digits.loc[SUBJECT_ROW, "no_biases"] > 0.05


def test_plot_invariance_writes_png(matrix, tmp_path):
    plot_invariance(matrix, tmp_path / "invariance.png", "untrained encoders")
    assert png_written(tmp_path / "invariance.png")


# ---- embedding views (figures 6/7) --------------------------------------------------------------
def clustered_embeddings(n=30, tasks=3):
    rng = np.random.default_rng(0)
    task_id = np.arange(n) % tasks
    centres = rng.normal(0, 10, (tasks, 16))
    z = centres[task_id] + rng.normal(0, 0.5, (n, 16))
    table = pd.DataFrame({"task_id": task_id, "performance": rng.uniform(0, 1, n), "angle": rng.uniform(-90, 90, n)})
    return z, table


@pytest.mark.parametrize("method", ["pca", "tsne"])
@pytest.mark.parametrize("color_by", ["task_id", "performance"])
def test_embedding_plots_write_png(method, color_by, tmp_path):
    z, table = clustered_embeddings()
    path = tmp_path / f"{method}_{color_by}.png"
    coordinates = plot_embeddings(
        z, table, path, color_by, method, "embeddings", highlight=table["task_id"].to_numpy() == 1
    )
    assert coordinates.shape == (30, 2) and png_written(path)


def test_pca_keeps_task_clusters_apart():
    z, table = clustered_embeddings()
    coordinates, labels = project(z, "pca")
    centres = np.stack([coordinates[table["task_id"] == t].mean(0) for t in range(3)])
    spread = max(coordinates[table["task_id"] == t].std(0).max() for t in range(3))
    gaps = [np.linalg.norm(centres[i] - centres[j]) for i in range(3) for j in range(i + 1, 3)]
    assert min(gaps) > 5 * spread and labels[0].startswith("PC 1")


def test_embedding_figure_pair(tmp_path):
    z, table = clustered_embeddings(n=12)
    plot_embedding_figure(z, table, tmp_path / "figure.png", ("task_id", "angle"), "digits-like")
    assert png_written(tmp_path / "figure.png")


def test_embedding_plots_reject_bad_inputs(tmp_path):
    z, table = clustered_embeddings(n=4, tasks=2)
    with pytest.raises(ValueError, match="at least 5"):
        plot_embeddings(z, table, tmp_path / "x.png", "task_id", "tsne")
    z, table = clustered_embeddings()
    with pytest.raises(ValueError, match="table rows"):
        plot_embeddings(z, table.iloc[:10], tmp_path / "x.png", "task_id")
    with pytest.raises(ValueError, match="no column"):
        plot_embeddings(z, table, tmp_path / "x.png", "language")
    with pytest.raises(ValueError, match="unknown method"):
        project(z, "umap")
    assert not (tmp_path / "x.png").exists()


# ---- probes (figures 13-16) ---------------------------------------------------------------------
@pytest.mark.parametrize("name", ["probing", "interactive"])
@pytest.mark.parametrize("setup", [(ARCH, TASK), (DIGITS_ARCH, DIGITS_TASK)], ids=["language", "digits"])
def test_plot_probes_writes_png(name, setup, tmp_path):
    architecture, task = setup
    encoder = build_encoder(name, architecture, task, **SMALL[name])
    tokens = ["a", "b", "c", "d", "BOS", "EOS"] if task.input_kind == "categorical" else None
    probes = plot_probes(encoder, architecture.init([7]), tmp_path / "probes.png", token_names=tokens)
    assert probes.shape == (3, 6, task.input_size) and png_written(tmp_path / "probes.png")
    if task.input_kind == "categorical":
        assert torch.allclose(probes.sum(-1), torch.ones(3, 6), atol=1e-5)


def test_probe_sequences_follow_the_network_only_when_interactive():
    weights = ARCH.init([1, 2])
    fixed = build_encoder("probing", ARCH, TASK, **SMALL["probing"])
    assert torch.equal(probe_sequences(fixed, weights.select(0)), probe_sequences(fixed, weights.select(1)))
    interactive = build_encoder("interactive", ARCH, TASK, **SMALL["interactive"])
    first, second = probe_sequences(interactive, weights.select(0)), probe_sequences(interactive, weights.select(1))
    with torch.no_grad():
        together = interactive.interrogate(weights)[1]
    torch.testing.assert_close(torch.stack([first, second]), together)
    torch.testing.assert_close(first[:, 0], second[:, 0])  # the first probe is asked before any answer
    # an untrained reader reacts only a little to the answers, but it does react
    assert (first[:, 1:] - second[:, 1:]).abs().max() > 1e-6
    with pytest.raises(ValueError, match="exactly one network"):
        probe_sequences(interactive, weights)
    with pytest.raises(TypeError, match="not a probing encoder"):
        probe_sequences(build_encoder("flattened", ARCH, TASK, hidden=8))


def test_plot_ablation_and_summary(tmp_path):
    rng = np.random.default_rng(0)
    results = pd.DataFrame(
        [
            {"value": probes, "seed": seed, "val_loss": 1.0 / probes + rng.normal(0, 0.05)}
            for probes in (1, 2, 4, 8)
            for seed in range(5)
        ]
    )
    results.loc[0, "val_loss"] = np.nan  # a diverged run is left out, not plotted as zero
    summary = plot_ablation(results, tmp_path / "ablation.png", "number of probes", log_x=True)
    assert png_written(tmp_path / "ablation.png")
    assert list(summary["value"]) == [1, 2, 4, 8] and list(summary["seeds"]) == [4, 5, 5, 5]
    assert ((summary["low"] <= summary["mean"]) & (summary["mean"] <= summary["high"])).all()
    assert summary["mean"].is_monotonic_decreasing
    with pytest.raises(ValueError, match="missing"):
        ablation_summary(results.drop(columns="seed"))


def test_loss_correlations():
    pretrain = np.array([0.5, 0.8, 1.1, 1.7, 2.0, 2.6])
    rows = pd.DataFrame(
        {
            "encoder": ["statistics", "flattened", "dwsnet", "probing", "interactive", "transformer"],
            "seed": [0, 1, 0, 1, 0, 1],
            "pretrain_val_loss": pretrain,
            "task_val": 3.0 * pretrain + 1.0,  # perfectly linear
            "task_ood": -2.0 * pretrain,  # perfectly anti-linear
            "performance_val": np.full(6, 0.25),  # constant: undefined
            "performance_ood": [0.1, np.nan, np.nan, np.nan, np.inf, 0.3],  # two finite pairs: undefined
        }
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        table = loss_correlations(rows)
    assert list(table.index) == ["task_val", "task_ood", "performance_val", "performance_ood"]
    assert table.loc["task_val", "pearson"] == pytest.approx(1.0)
    assert table.loc["task_ood", "pearson"] == pytest.approx(-1.0)
    assert np.isnan(table.loc["performance_val", "pearson"]) and table.loc["performance_val", "pairs"] == 6
    assert np.isnan(table.loc["performance_ood", "pearson"]) and table.loc["performance_ood", "pairs"] == 2
    assert pearson([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx(np.corrcoef([1, 2, 3, 4], [1, 3, 2, 4])[0, 1])
    with pytest.raises(ValueError, match="unknown target"):
        loss_correlations(rows, targets=["accuracy"])
