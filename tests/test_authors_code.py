"""experiments/authors_code.py (paper 000's released code on a weightspace zoo): a wrong path, an
unknown encoder or a used output folder is one line and exit code 2, before anything is imported or
trained. Training with their code needs their repository, which the tests do not have
(docs/reproductions/probing-budget.md runs it)."""

from __future__ import annotations

import pytest

from experiment_scripts import experiment_script
from weightspace.zoo import build_zoo


@pytest.fixture(scope="module")
def script():
    return experiment_script("authors_code")


@pytest.fixture(scope="module")
def zoo(tmp_path_factory):
    config = {"models": 4, "population": 4, "steps": 4, "checkpoints": [4], "samples": 8, "rollouts": 2}
    return build_zoo(tmp_path_factory.mktemp("zoo") / "fl", "formal-languages", config, progress=False)


@pytest.mark.parametrize(
    "change, words",
    [
        ({"--authors-code": "{tmp}/nowhere"}, "nowhere"),
        ({"--zoo": "{tmp}/no-zoo"}, "no-zoo"),
        ({"--encoder": "dwsnet"}, "dwsnet"),
        ({"--out": "{tmp}/used"}, "used"),
        ({"--steps": "0"}, "steps"),
    ],
)
def test_bad_input_is_one_line_and_exit_code_2(script, zoo, tmp_path, capsys, change, words):
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "metrics.jsonl").write_text("{}\n")
    (tmp_path / "no-zoo").mkdir()
    args = {"--authors-code": "{tmp}/nowhere", "--zoo": str(zoo), "--encoder": "probing", "--out": "{tmp}/out"}
    args = {**args, "--authors-code": str(tmp_path)} if "--authors-code" not in change else args
    args.update(change)
    try:
        code = script.main([part.format(tmp=tmp_path) for pair in args.items() for part in pair])
    except SystemExit as exit:  # argparse's refusals
        code = exit.code
    error = capsys.readouterr().err
    assert code == 2, error
    lines = error.strip().splitlines()
    assert len(lines) == 1 and words in lines[0], error
    assert not (tmp_path / "out").exists()
