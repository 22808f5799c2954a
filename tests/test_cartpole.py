"""CartPole: the 212-parameter CartPoleNet layout, gymnasium's dynamics and step cap, survival
time of hand-made controllers, the population DQN (alone == together, exact resume) and the zoo."""

import json

import gymnasium as gym
import numpy as np
import pytest
import torch
from click.testing import CliRunner
from gymnasium.envs.classic_control.cartpole import CartPoleEnv
from torch import nn

import weightspace as ws
from killed_builds import killed_builds_fixture
from weightspace.cli import main
from weightspace.networks import Population
from weightspace.rl import (
    CARTPOLE_NET,
    CartPoleBatch,
    DQNRuns,
    DQNSettings,
    PopulationDQN,
    episode_lengths,
    survival_group,
    survival_time,
    test_initial_states,
)
from weightspace.zoo import build_zoo


def lean_controller(observation):
    """Push towards the side the pole leans to (angle only): fails after tens of steps."""
    return (observation[..., 2] > 0).long()


def balancing_controller(observation):
    """Push towards the lean, anticipating with the pole's angular velocity: balances for good."""
    return (observation[..., 2] + 0.5 * observation[..., 3] > 0).long()


def gymnasium_episode_lengths(controller, seeds, cap):
    """The reference: gymnasium's own single environment with its time limit, one episode per seed."""
    env = gym.make("CartPole-v1", max_episode_steps=cap)
    lengths = []
    for seed in seeds:
        observation, _ = env.reset(seed=seed)
        length, done = 0, False
        while not done:
            action = int(controller(torch.from_numpy(observation)))
            observation, _, terminated, truncated, _ = env.step(action)
            length += 1
            done = terminated or truncated
        lengths.append(length)
    return np.array(lengths)


def controller_network(weights_on_state, copies=1):
    """A CartPoleNet whose greedy action is 'right iff w . s > 0': one hidden unit computes
    ELU(w . s) (positive exactly when w . s is), the right action's Q-value is that unit."""
    state = {n: torch.zeros(copies, *t.shape) for n, t in CARTPOLE_NET.init([0]).state_dict(0).items()}
    state["0.weight"][:, 0] = torch.tensor(weights_on_state)
    state["2.weight"][:, 1, 0] = 1.0
    return Population(CARTPOLE_NET.spec, state)


def test_cartpolenet_has_212_parameters_laid_out_as_nn_sequential():
    spec = CARTPOLE_NET.spec
    assert spec.num_parameters == 212
    assert spec.names == ["0.weight", "0.bias", "2.weight", "2.bias"]
    reference = nn.Sequential(nn.Linear(4, 30), nn.ELU(), nn.Linear(30, 2))
    assert sum(p.numel() for p in reference.parameters()) == 212
    # torch module -> population -> flat vector -> population -> torch module: nothing changes
    population = Population.from_state_dicts(spec, [reference.state_dict()])
    again = Population.unflatten(spec, population.flatten())
    rebuilt = CARTPOLE_NET.to_torch(again, 0)
    assert isinstance(rebuilt, nn.Sequential) and isinstance(rebuilt[1], nn.ELU)
    for name, tensor in reference.state_dict().items():
        assert torch.equal(rebuilt.state_dict()[name], tensor)
    x = torch.randn(7, 4)
    torch.testing.assert_close(CARTPOLE_NET.forward(again, x.unsqueeze(0))[0], reference(x), rtol=1e-6, atol=1e-6)


def test_test_episodes_start_where_gymnasium_resets():
    states = test_initial_states(5, first_seed=3)
    for i, seed in enumerate(range(3, 8)):
        env = CartPoleEnv()
        env.reset(seed=seed)
        assert np.array_equal(states[i], env.state)


def test_batched_steps_are_gymnasiums_single_env_steps():
    rng = np.random.default_rng(0)
    states = rng.uniform(-0.2, 0.2, size=(16, 4))
    actions = rng.integers(0, 2, size=16)
    batch = CartPoleBatch(16)
    batch.set_state(states)
    terminated, _ = batch.step(actions)
    single = CartPoleEnv()
    for i in range(16):
        single.reset()
        single.state = states[i].copy()
        observation, _, done, _, _ = single.step(int(actions[i]))
        assert np.array_equal(batch.state[i], single.state)
        assert np.array_equal(batch.observation()[i].numpy(), observation)
        assert done == terminated[i]


def test_survival_time_of_a_hand_made_controller_matches_gymnasium():
    expected = gymnasium_episode_lengths(lean_controller, range(20), 200)
    assert 10 < expected.mean() < 150  # the controller fails, at different times: a sharp check
    lengths = episode_lengths(lean_controller, 1, episodes=20)
    assert np.array_equal(lengths[0].numpy(), expected)
    # the same controller as a CartPoleNet, evaluated greedily as the zoo does
    network = controller_network([0.0, 0.0, 1.0, 0.0], copies=3)
    survival = survival_time(CARTPOLE_NET, network, episodes=20)
    assert torch.equal(survival, torch.full((3,), float(expected.mean()), dtype=torch.float64))


def test_episodes_are_capped_at_200_steps_and_the_cap_is_configurable():
    network = controller_network([0.0, 0.0, 1.0, 0.5])  # the balancing controller
    assert gymnasium_episode_lengths(balancing_controller, range(5), 200).tolist() == [200] * 5
    survival, lengths = survival_time(CARTPOLE_NET, network, episodes=30, return_lengths=True)
    assert lengths.max() == 200 and survival.item() == 200.0
    assert survival_time(CARTPOLE_NET, network, episodes=30, max_episode_steps=57).item() == 57.0
    always_left = episode_lengths(lambda o: torch.zeros(o.shape[:2], dtype=torch.long), 1, 30)
    assert 8 <= always_left.float().mean() <= 11  # the paper: "lasts only 9 steps"


def test_survival_groups_follow_table_1():
    assert survival_group(np.array([9.4, 50.0, 50.01, 100.0, 120, 150.0, 151, 200])).tolist() == [
        1,
        1,
        2,
        2,
        3,
        3,
        4,
        4,
    ]


def _runs(indices):
    i = np.asarray(indices)
    return DQNRuns(
        seed=i + 100,
        learning_rate=0.003 * (1 + i),
        weight_decay=np.full(len(i), 1e-4),
        gamma=0.9 + 0.02 * i,
        epsilon_final=np.full(len(i), 0.05),
        exploration_steps=40 + 10 * i,
        target_update=10 + 5 * i,
        train_steps=np.array([120, 70, 100])[i],
    )


SETTINGS = DQNSettings(batch_size=8, replay_capacity=64, learning_starts=16)


def _train(indices, steps=120):
    trainer = PopulationDQN(CARTPOLE_NET, _runs(indices), steps, SETTINGS)
    for _ in range(steps):
        trainer.train_step()
    return trainer


def test_dqn_trains_each_network_as_if_alone_and_stops_at_its_training_length():
    together = _train([0, 1, 2])
    alone = _train([1])
    for name in together.weights:
        torch.testing.assert_close(together.weights[name][1], alone.weights[name][0], rtol=1e-5, atol=1e-6)
    # network 1 stopped after 70 steps: 50 more steps change nothing
    stopped = PopulationDQN(CARTPOLE_NET, _runs([1]), 70, SETTINGS)
    for _ in range(70):
        stopped.train_step()
    for name in alone.weights:
        assert torch.equal(stopped.weights[name], alone.weights[name])
    assert not torch.equal(together.weights["0.weight"][1], CARTPOLE_NET.init([101])["0.weight"][0])


def test_dqn_resumes_exactly_from_its_state_tensors():
    reference = _train([0, 2], steps=120)
    first = PopulationDQN(CARTPOLE_NET, _runs([0, 2]), 120, SETTINGS)
    for _ in range(47):
        first.train_step()
    saved = {k: v.clone() for k, v in first.state_tensors().items()}
    resumed = PopulationDQN(CARTPOLE_NET, _runs([0, 2]), 120, SETTINGS)
    resumed.load_state_tensors(saved, 47)
    for _ in range(120 - 47):
        resumed.train_step()
    for name in reference.weights:
        assert torch.equal(resumed.weights[name], reference.weights[name])
    for name, tensor in reference.state_tensors().items():
        assert torch.equal(resumed.state_tensors()[name], tensor), name


TINY = dict(
    models=5,
    population=3,
    steps=90,
    checkpoints=(0, 30, 90),
    test_episodes=12,
    stored_episodes=4,
    save_every=20,
    seed=2,
    replay_batch_size=8,
)


def _build(path, **overrides):
    return build_zoo(path, "cartpole", {**TINY, **overrides}, progress=False)


@pytest.fixture(scope="module")
def tiny_zoo(tmp_path_factory):
    return _build(tmp_path_factory.mktemp("zoo") / "cartpole")


def test_zoo_table_weights_and_rollouts(tiny_zoo):
    zoo = ws.load_zoo(tiny_zoo)
    table = zoo.table
    assert len(zoo) == 15 and zoo.spec.num_parameters == 212
    for column in [
        "survival_time",
        "group",
        "seed",
        "learning_rate",
        "gamma",
        "epsilon_final",
        "train_steps",
        "exploration_steps",
        "target_update",
        "trained_steps",
        "split",
    ]:
        assert column in table.columns
    assert np.array_equal(table["group"], survival_group(table["survival_time"]))
    assert (table["trained_steps"] == np.minimum(table["step"], table["train_steps"])).all()
    row = 7
    module = zoo.architecture.to_torch(zoo.weights([row]), 0)
    assert sorted(zoo.state_dict(row)) == ["0.bias", "0.weight", "2.bias", "2.weight"]
    module.load_state_dict(zoo.state_dict(row))  # loads into nn.Sequential(Linear, ELU, Linear)
    survival, lengths = survival_time(CARTPOLE_NET, zoo.weights([row]), 12, return_lengths=True)
    assert survival.item() == pytest.approx(table["survival_time"].iloc[row])
    assert torch.equal(zoo.rollouts(row)["episode_lengths"], lengths[0, :4])
    # a run's rows after its training length hold its final network
    for run_id, rows in table.groupby("run_id"):
        last = rows[rows["step"] >= rows["train_steps"]]
        for i in last.index[1:]:
            assert torch.equal(zoo.weights([i]).flatten(), zoo.weights([last.index[0]]).flatten())


def test_zoo_is_deterministic(tiny_zoo, tmp_path):
    again = ws.load_zoo(_build(tmp_path / "again"))
    zoo = ws.load_zoo(tiny_zoo)
    assert zoo.table.equals(again.table)
    assert torch.equal(zoo.weights().flatten(), again.weights().flatten())


KILL_POINTS = [2, 4]


killed_builds = killed_builds_fixture("cartpole", TINY, KILL_POINTS)


@pytest.mark.parametrize("fail_after", KILL_POINTS)
def test_zoo_resumes_after_a_kill(tiny_zoo, killed_builds, fail_after):
    out = killed_builds.killed(fail_after)
    assert (out / "progress").exists()  # killed mid-shard, with trainer state saved
    _build(out)
    zoo, resumed = ws.load_zoo(tiny_zoo), ws.load_zoo(out)
    assert zoo.table.equals(resumed.table)
    assert torch.equal(zoo.weights().flatten(), resumed.weights().flatten())
    assert not (out / "progress").exists()


def test_cli_builds_a_cartpole_zoo(tmp_path):
    out = tmp_path / "cli"
    args = [
        "zoo",
        "build",
        "cartpole",
        "--out",
        str(out),
        "--models",
        "3",
        "--steps",
        "40",
        "--checkpoints",
        "0,40",
        "--test-episodes",
        "10",
        "--stored-episodes",
        "3",
        "--population",
        "3",
        "--quiet",
    ]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "survival_time by training step" in result.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["kind"] == "cartpole" and manifest["architecture"]["num_parameters"] == 212
