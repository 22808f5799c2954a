"""Settings once, keys by construction (issue 22): every step of every family computes from the
settings its key hashes and nothing else, so changing any of them changes its key."""

from pathlib import Path

import pytest

from weightspace.experiments.config import load_experiment
from weightspace.experiments.family import get_family
from weightspace.experiments.steps import Finished, Results, Step, reads_only_its_settings, step_key

EXPERIMENTS = Path(__file__).resolve().parent.parent / "experiments"
DEMOS = ["demo.toml", "tipl-demo.toml", "degeneracy-demo.toml", "cartpole-demo.toml"]


class _Pretend(Results):
    """Finished results as a step generator reads them: any step, with a zoo's summary."""

    def __missing__(self, name):
        return Finished(
            name,
            "0" * 16,
            Path("/nowhere"),
            {
                "path": None,
                "checkpoints": 1,
                "split_sizes": {},
                "best_val_loss": 0.0,
                "targets": {"task": {}, "performance": {}},
            },
        )


def _steps(demo: str) -> list[Step]:
    config = load_experiment(EXPERIMENTS / demo)
    return list(get_family(config.family).steps(config, _Pretend()))


def _leaves(value, path=()):
    """(path, value) of every leaf of a JSON-like value."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _leaves(item, (*path, key))
    elif isinstance(value, (list, tuple)) and value:
        for index, item in enumerate(value):
            yield from _leaves(item, (*path, index))
    else:
        yield path, value


def _changed(value):
    if isinstance(value, bool):
        return not value
    if isinstance(value, (int, float)):
        return value + 1
    if isinstance(value, str):
        return value + "-changed"
    if value is None:
        return 1
    return [0]  # an empty list or dict


def _replace(settings, path, new):
    if not path:
        return new
    head, rest = path[0], path[1:]
    if isinstance(settings, dict):
        return {**settings, head: _replace(settings[head], rest, new)}
    items = list(settings)
    items[head] = _replace(items[head], rest, new)
    return items


@pytest.mark.parametrize("demo", DEMOS)
def test_every_step_reads_only_what_its_key_hashes(demo):
    steps = _steps(demo)
    assert steps
    for step in steps:
        assert reads_only_its_settings(step.compute), f"{step.name}: {step.compute!r} closes over other settings"
        if step.compute_together is not None:
            assert reads_only_its_settings(step.compute_together), step.name
        inputs = ["0" * 16] * len(step.input_names)
        key = step_key(step.kind, step.settings, inputs)
        for path, value in _leaves(step.settings):
            changed = _replace(step.settings, path, _changed(value))
            assert step_key(step.kind, changed, inputs) != key, (step.name, path)


def test_a_closure_is_caught():
    scale = 3
    assert not reads_only_its_settings(lambda context, settings: {"value": scale})
    assert reads_only_its_settings(_leaves)
