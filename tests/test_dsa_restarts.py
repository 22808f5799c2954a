"""experiments/dsa_restarts.py: a pair's spread over seeds of the starts, the smallest stable number
of starts, and one line with exit code 2 for bad input."""

from __future__ import annotations

import numpy as np
import pytest

from experiment_scripts import experiment_script


@pytest.fixture(scope="module")
def script():
    return experiment_script("dsa_restarts")


def test_the_spread_and_the_stable_number_of_starts(script):
    distances = np.array([[0.5, 1.0, 2.0], [0.6, 1.0, 2.0], [0.4, 1.0, 2.1]])  # (seeds, pairs)
    np.testing.assert_allclose(script.spreads(distances), [0.4, 0.0, 0.1 / (6.1 / 3)])
    table = {1: np.array([0.3, 0.0, 0.0]), 2: np.array([0.01, 0.0, 0.08]), 5: np.array([0.01, 0.0, 0.02])}
    assert script.stable_restarts(table) == 5  # n = 2: median 1% but 90th percentile above 5%
    assert script.stable_restarts({1: np.array([0.3])}) is None


@pytest.mark.parametrize("args, words", [(["{tmp}"], "not a zoo"), (["{tmp}", "--seeds", "1"], "--seeds")])
def test_bad_input_is_one_line_and_exit_code_2(script, tmp_path, capsys, args, words):
    if "--seeds" in args:
        (tmp_path / "manifest.json").write_text("{}")
    assert script.main([a.format(tmp=tmp_path) for a in args]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and words in err
