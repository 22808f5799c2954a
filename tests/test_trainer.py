"""The population trainer: AdamW as torch's, the paper's schedule, K together == each alone."""

import pytest
import torch
import torch.nn.functional as F

from weightspace.networks import LSTM
from weightspace.tasks import formal_languages as fl
from weightspace.training import PAPER_CHECKPOINTS, PopulationTrainer, default_checkpoints, piecewise_linear


def test_schedule_and_checkpoints_follow_the_paper():
    assert piecewise_linear(0, 20000) == pytest.approx(1.0)
    assert 0.01 * piecewise_linear(10000, 20000) == pytest.approx(0.003)
    assert 0.01 * piecewise_linear(20000, 20000) == pytest.approx(0.0003)
    assert 0.01 * piecewise_linear(5000, 20000) == pytest.approx(0.0065)
    assert default_checkpoints(20000) == list(PAPER_CHECKPOINTS)
    assert default_checkpoints(300) == [0, 100, 200, 300]


def _trainer(params, seeds, lrs, wds, steps=12):
    arch = LSTM(6, 16, 2, 6)
    params = torch.tensor(params)

    def batch(step):
        return fl.training_batch(params, seeds, step, 8)

    return PopulationTrainer(arch, arch.init(seeds), batch, steps, lr=lrs, weight_decay=wds)


def test_population_adamw_equals_torch_adamw_with_nn_lstm():
    trainer = _trainer([[1, 0, -1]], [3], [0.01], [0.05])
    module = trainer.architecture.to_torch(trainer.weights, 0)
    optimizer = torch.optim.AdamW(module.parameters(), lr=0.01, weight_decay=0.05)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: piecewise_linear(s, 12))
    for step in range(12):
        x, y = trainer.batch_fn(step)
        loss = F.cross_entropy(module(x[0])[0].reshape(-1, 6), y[0].reshape(-1))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        scheduler.step()
        trainer.train_step()
        torch.testing.assert_close(trainer.last_loss[0], loss.detach(), atol=1e-5, rtol=1e-5)
    for name, param in module.named_parameters():
        torch.testing.assert_close(trainer.weights[name][0], param.detach(), atol=1e-5, rtol=1e-4)


def test_training_together_equals_training_alone():
    params = [[1, 0, -1], [-3, 2, 0], [2, 2, 2]]
    seeds, lrs, wds = [10, 20, 30], [0.01, 0.003, 0.02], [1e-4, 0.0, 1e-2]
    together = _trainer(params, seeds, lrs, wds)
    together.run([], lambda *a: None)
    for k in range(3):
        alone = _trainer(params[k : k + 1], seeds[k : k + 1], lrs[k : k + 1], wds[k : k + 1])
        alone.run([], lambda *a: None)
        for name in together.spec.names:
            torch.testing.assert_close(together.weights[name][k], alone.weights[name][0], atol=1e-5, rtol=1e-4)


def test_checkpoints_are_called_at_the_right_steps_and_step_zero_is_the_init():
    trainer = _trainer([[0, 0, 0], [1, 1, 1]], [1, 2], 0.01, 1e-4)
    init = trainer.weights.clone()
    seen = {}
    trainer.run([0, 5, 12], lambda step, w: seen.__setitem__(step, w.clone()))
    assert sorted(seen) == [0, 5, 12] and trainer.step == 12
    for name in init.spec.names:
        assert torch.equal(seen[0][name], init[name])
    assert not torch.equal(seen[12]["rnn.weight_hh_l0"], init["rnn.weight_hh_l0"])


def test_training_reduces_the_loss():
    trainer = _trainer([[0, 0, 0], [1, -1, 2]], [1, 2], 0.01, 1e-4, steps=60)
    first = trainer.train_step().clone()
    for _ in range(59):
        last = trainer.train_step()
    assert (last < first * 0.7).all(), (first, last)


def test_resume_from_state_is_exact():
    a = _trainer([[0, 1, 0]], [4], 0.01, 1e-4)
    for _ in range(5):
        a.train_step()
    state = {k: v.clone() for k, v in a.state_tensors().items()}
    b = _trainer([[0, 1, 0]], [4], 0.01, 1e-4)
    b.load_state_tensors(state, 5)
    for _ in range(7):
        a.train_step()
        b.train_step()
    for name in a.spec.names:
        assert torch.equal(a.weights[name], b.weights[name])
