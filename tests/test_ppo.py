"""Population PPO (CleanRL semantics) and the PPO trajectory zoo of TIPL (papers 001/003)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings

import gymnasium as gym
import numpy as np
import pytest
import torch
from safetensors.torch import load_file

import weightspace as ws
from experiment_scripts import experiment_script
from killed_builds import killed_builds_fixture
from weightspace.errors import ConfigError
from weightspace.networks import architecture_from_spec
from weightspace.networks.policy import GaussianMLP
from weightspace.rl.mujoco import MujocoEnvs, episode_seeds, evaluate_policies, resolve_env_id
from weightspace.rl.ppo import PopulationPPO, PPOSettings
from weightspace.tasks.ppo_trajectories import EVALUATION_SEED
from weightspace.zoo import build_zoo

ENV = "InvertedPendulum-v4"
SMALL = PPOSettings(num_steps=128, num_minibatches=4, update_epochs=2)
#: a zoo of 3 trials, 4 iterations of 128 steps, a snapshot every 4 of its 32 updates, 2 segments
TINY = dict(
    models=3,
    population=3,
    env_steps=512,
    num_steps=128,
    num_minibatches=4,
    update_epochs=2,
    snapshots=8,
    save_every=2,
    eval_episodes=2,
    evaluate_every=4,
)


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        yield


def test_environment_versions_follow_the_paper():
    assert resolve_env_id("InvertedPendulum") == ENV  # -v4 is installed, as the paper used
    assert resolve_env_id("InvertedPendulum-v5") == "InvertedPendulum-v5"
    with pytest.raises(ConfigError, match="no usable MuJoCo environment"):
        resolve_env_id("NoSuchTask")


@pytest.mark.parametrize("env_id, min_episodes", [(ENV, 2), ("HalfCheetah-v4", 0)])
def test_batched_wrappers_equal_gymnasium_wrappers(env_id, min_episodes):
    """ClipAction, NormalizeObservation (+clip), NormalizeReward (+clip), as CleanRL stacks them, over
    two episodes; a finished episode restarts with the next episode seed."""
    seed, gamma = 11, 0.99
    ours = MujocoEnvs(env_id, [seed], gamma)
    env = gym.make(env_id, disable_env_checker=True)
    env = gym.wrappers.ClipAction(env)
    env = gym.wrappers.NormalizeObservation(env)
    env = gym.wrappers.TransformObservation(env, lambda o: np.clip(o, -10, 10), env.observation_space)
    env = gym.wrappers.NormalizeReward(env, gamma=gamma)
    env = gym.wrappers.TransformReward(env, lambda r: np.clip(r, -10, 10))
    expected, _ = env.reset(seed=int(episode_seeds(np.array([seed]), np.array([0]))[0]))
    obs = ours.reset()
    np.testing.assert_allclose(obs[0].numpy(), expected, rtol=1e-5, atol=1e-6)
    rng = np.random.default_rng(0)
    episodes = 0
    for _ in range(60):
        action = rng.normal(0, 4, size=ours.action_size)  # beyond the action space's bounds: clipped by both
        expected, reward, terminated, truncated, _ = env.step(action)
        obs, our_reward, done = ours.step(action[None])
        np.testing.assert_allclose(our_reward[0].item(), reward, rtol=1e-5)
        if terminated or truncated:
            episodes += 1
            assert done[0]
            expected, _ = env.reset(seed=int(episode_seeds(np.array([seed]), np.array([episodes]))[0]))
        np.testing.assert_allclose(obs[0].numpy(), expected, rtol=1e-5, atol=1e-6)
    assert episodes >= min_episodes
    assert [k for k, _, _ in ours.finished] == [0] * episodes


def test_population_member_equals_the_trial_alone():
    alone = PopulationPPO(ENV, [5], 128 * 3, (8, 8), (16, 16), SMALL)
    together = PopulationPPO(ENV, [1, 5, 9], 128 * 3, (8, 8), (16, 16), SMALL)
    for _ in range(3):
        alone.run_iteration()
        together.run_iteration()
    for name, tensor in alone.parameters.items():
        torch.testing.assert_close(tensor[0], together.parameters[name][1], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(alone.envs.obs_mean[0], together.envs.obs_mean[1])
    assert alone.episodes_finished[0] == together.episodes_finished[1]
    # and the trials differ from each other
    assert not torch.equal(together.parameters["actor.0.weight"][0], together.parameters["actor.0.weight"][1])


def test_a_halfcheetah_population_trains():
    ppo = PopulationPPO(
        "HalfCheetah-v4", [0, 1], 64, (16, 16), (16, 16), PPOSettings(num_steps=64, num_minibatches=2, update_epochs=1)
    )
    before = ppo.actor().flatten().clone()
    ppo.run_iteration()
    assert ppo.actor()["log_std"].shape == (2, 6) and ppo.envs.observation_size == 17
    assert ppo.update == 2 and not torch.equal(before, ppo.actor().detach().flatten())


def test_initialisation_is_cleanrl_layer_init():
    ppo = PopulationPPO(ENV, [3, 4], 128, (8, 8), (64, 64), SMALL)
    w = ppo.parameters["actor.2.weight"][0]
    torch.testing.assert_close(w @ w.T, 2.0 * torch.eye(8), atol=1e-5, rtol=0)  # orthogonal, gain sqrt 2
    last = ppo.parameters["actor.4.weight"][0]
    assert abs(torch.linalg.norm(last).item() - 0.01) < 1e-5  # the action layer's gain 0.01 (one row)
    assert torch.equal(ppo.parameters["actor.log_std"], torch.zeros(2, 1))
    assert all(ppo.parameters[f"critic.{i}.bias"].abs().sum() == 0 for i in (0, 2, 4))


def test_gaussian_policy_log_prob_matches_torch_distributions():
    mean, log_std, action = torch.randn(3, 5, 2), torch.randn(3, 1, 2), torch.randn(3, 5, 2)
    expected = torch.distributions.Normal(mean, log_std.exp()).log_prob(action).sum(-1)
    torch.testing.assert_close(GaussianMLP.log_prob(mean, log_std, action), expected)
    torch.testing.assert_close(
        GaussianMLP.entropy(log_std[:, 0]), torch.distributions.Normal(0, log_std[:, 0].exp()).entropy().sum(-1)
    )


@pytest.fixture(scope="module")
def tiny_zoo(tmp_path_factory):
    return build_zoo(tmp_path_factory.mktemp("ppo") / "zoo", "ppo-trajectories", TINY, progress=False)


def test_trajectory_zoo_layout(tiny_zoo):
    zoo = ws.load_zoo(tiny_zoo)
    config = zoo.config
    assert config.total_updates == 32 and config.checkpoints == tuple(range(0, 33, 4))
    assert len(zoo.table) == 3 * 9 and zoo.manifest["shards"]["total"] == 2
    assert zoo.manifest["task"]["environment"] == ENV
    assert isinstance(zoo.architecture, GaussianMLP)
    trajectory = zoo.trajectory(1)
    assert trajectory.shape == (9, zoo.spec.num_parameters)
    rows = zoo.table[zoo.table["run_id"] == 1].sort_values("step")
    assert rows["step"].tolist() == list(range(0, 33, 4))
    # 8 updates per iteration; a snapshot taken during iteration i has seen (i + 1) x 128 steps
    assert rows["env_step"].tolist() == [0] + [128 * (1 + (u - 1) // 8) for u in range(4, 33, 4)]
    torch.testing.assert_close(trajectory[3], zoo.weights([rows.index[3]]).flatten()[0])
    assert zoo.rollouts(rows.index[-1])["obs_count"].item() > 512  # every step and reset went into the statistics
    with pytest.raises(ConfigError, match="no run 7"):
        zoo.trajectory(7)


def test_stored_policy_reproduces_its_recorded_return(tiny_zoo):
    zoo = ws.load_zoo(tiny_zoo)
    table = zoo.table
    evaluated = table[table["eval_return"].notna()]
    assert set(evaluated["step"]) == {0, 16, 32}  # every 4th snapshot and the last
    rows = evaluated.index.to_numpy()
    statistics = zoo.rollout_batch(rows)
    returns = evaluate_policies(
        ENV,
        zoo.architecture,
        zoo.weights(rows),
        statistics["obs_mean"],
        statistics["obs_var"],
        zoo.config.eval_episodes,
        EVALUATION_SEED,
    ).mean(1)
    np.testing.assert_allclose(returns.numpy(), evaluated["eval_return"].to_numpy(), rtol=1e-6)
    # the statistics matter: the same weights with fresh statistics score differently
    fresh = evaluate_policies(
        ENV,
        zoo.architecture,
        zoo.weights(rows),
        torch.zeros_like(statistics["obs_mean"]),
        torch.ones_like(statistics["obs_var"]),
        zoo.config.eval_episodes,
        EVALUATION_SEED,
    )
    assert not np.allclose(fresh.mean(1).numpy(), returns.numpy())


def test_zoo_is_readable_without_weightspace(tiny_zoo):
    import pyarrow.parquet as pq
    from safetensors.numpy import load_file

    manifest = json.loads((tiny_zoo / "manifest.json").read_text())
    assert manifest["architecture"]["architecture"] == "gaussian-mlp"
    table = pq.read_table(tiny_zoo / "checkpoints.parquet").to_pandas()
    weights = load_file(tiny_zoo / "weights" / "shard-00001.safetensors")
    assert weights["log_std"].shape[0] == (table["shard"] == 1).sum()
    assert architecture_from_spec(manifest["architecture"]).spec.num_parameters == 122


@pytest.fixture(scope="module")
def half_zoo(tmp_path_factory):
    out = tmp_path_factory.mktemp("ppo-half") / "zoo"
    return ws.load_zoo(build_zoo(out, "ppo-trajectories", {**TINY, "weights_dtype": "float16"}, progress=False))


def test_float16_snapshots_are_the_float32_ones_rounded_and_read_as_float32(tiny_zoo, half_zoo, tmp_path):
    half = half_zoo
    full = ws.load_zoo(tiny_zoo)
    stored = load_file(half.path / "weights" / "shard-00000.safetensors")
    assert all(t.dtype == torch.float16 for t in stored.values())
    for run in range(TINY["models"]):
        trajectory = half.trajectory(run)
        assert trajectory.dtype == torch.float32
        assert torch.equal(trajectory, full.trajectory(run).half().float())  # training is the same; only storage rounds
    assert half.weights([0])["log_std"].dtype == torch.float32 and half.state_dict(0)["log_std"].dtype == torch.float32
    sizes = [sum(f.stat().st_size for f in (zoo.path / "weights").iterdir()) for zoo in (half, full)]
    assert sizes[0] < 0.6 * sizes[1]
    with pytest.raises(ConfigError, match="weights_dtype"):
        build_zoo(tmp_path / "bad", "ppo-trajectories", {**TINY, "weights_dtype": "int8"}, progress=False)


def test_storage_precision_measures_float16_histories_against_the_float32_truth(tiny_zoo, half_zoo, capsys):
    script = experiment_script("tipl_storage_precision")
    result = script.measure(tiny_zoo, test_trials=1, starts=2, horizon=2, context=3, trim_rank=2)
    trajectory = ws.load_zoo(tiny_zoo).trajectory(2).double()
    points = [2, 6]  # after a context of 3, leaving 2 snapshots of 9
    copy = np.mean([[float(((trajectory[t] - trajectory[t + h]) ** 2).mean()) for h in (1, 2)] for t in points], 0)
    np.testing.assert_allclose(result["wpe"]["copy_last/float32"], copy, rtol=1e-12)
    assert all(0 < v < min(copy) for v in result["wpe"]["rounded truth/float16"])
    assert result["wpe"]["linear/float16"] != result["wpe"]["linear/float32"]
    assert (
        script.main(
            [
                "--zoo",
                str(tiny_zoo),
                "--test-trials",
                "1",
                "--starts",
                "2",
                "--horizon",
                "2",
                "--context",
                "3",
                "--trim-rank",
                "2",
            ]
        )
        == 0
    )
    assert "largest relative WPE change" in capsys.readouterr().out
    assert script.main(["--zoo", str(half_zoo.path)]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


KILL_POINTS = [3, 5, 6]  # segment uncommitted; committed, unlisted; table, no manifest


killed_builds = killed_builds_fixture("ppo-trajectories", TINY, KILL_POINTS)


@pytest.mark.parametrize("fail_after", KILL_POINTS)
def test_trajectory_build_resumes_after_a_kill(tiny_zoo, killed_builds, fail_after):
    out = killed_builds.killed(fail_after)
    build_zoo(out, "ppo-trajectories", TINY, progress=False)
    zoo, resumed = ws.load_zoo(tiny_zoo), ws.load_zoo(out)
    assert zoo.table.equals(resumed.table)
    assert torch.equal(zoo.weights().flatten(), resumed.weights().flatten())
    assert torch.equal(zoo.rollout_batch()["obs_mean"], resumed.rollout_batch()["obs_mean"])
    assert not (out / "progress").exists()


def test_groups_in_worker_processes_write_the_same_zoo(tmp_path):
    """A build in two worker processes, killed midway and resumed (in workers again: every group is
    trained in a worker), writes the zoo that one process writes."""
    two_groups = {**TINY, "models": 4, "population": 2}
    zoo = ws.load_zoo(build_zoo(tmp_path / "here", "ppo-trajectories", two_groups, progress=False, processes=1))
    assert len(zoo.table) == 4 * 9
    # a worker killed mid-build: the build stops with one message, and a rerun finishes the same zoo
    # (a script without an `if __name__ == "__main__"` guard: spawned workers do not rerun it)
    script = tmp_path / "build.py"
    script.write_text(
        "import sys; from weightspace.zoo import build_zoo; "
        f"build_zoo(sys.argv[1], 'ppo-trajectories', {two_groups!r}, progress=False, processes=2)\n"
    )
    env = {**os.environ, "WEIGHTSPACE_FAULT_AFTER_WRITES": "4", "OMP_NUM_THREADS": "1"}
    killed = tmp_path / "killed"
    result = subprocess.run([sys.executable, str(script), str(killed)], env=env, capture_output=True, text=True)
    assert result.returncode != 0 and "stopped (exit code 137)" in result.stderr, result.stderr[-2000:]
    build_zoo(killed, "ppo-trajectories", two_groups, progress=False, processes=2)
    resumed = ws.load_zoo(killed)
    assert zoo.manifest["shards"] == resumed.manifest["shards"]
    assert zoo.table.equals(resumed.table)
    assert torch.equal(zoo.weights().flatten(), resumed.weights().flatten())
    assert not (killed / "progress").exists()


def test_derived_settings_are_not_overridden(tmp_path):
    with pytest.raises(ConfigError, match="steps is derived"):
        build_zoo(tmp_path / "z", "ppo-trajectories", {**TINY, "steps": 5}, progress=False)
    with pytest.raises(ConfigError, match="multiple of num_minibatches"):
        build_zoo(tmp_path / "z", "ppo-trajectories", {**TINY, "num_minibatches": 5}, progress=False)


def test_a_build_does_not_resume_on_another_environment_version(tiny_zoo, tmp_path, monkeypatch):
    import shutil

    zoo = tmp_path / "zoo"
    shutil.copytree(tiny_zoo, zoo)
    manifest = json.loads((zoo / "manifest.json").read_text())
    manifest["task"]["environment"] = "InvertedPendulum-v5"  # as if started where -v4 was missing
    (zoo / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ConfigError, match="started with another environment .*InvertedPendulum-v5 there vs"):
        build_zoo(zoo, "ppo-trajectories", TINY, progress=False)
    monkeypatch.setenv("WEIGHTSPACE_ALLOW_ENVIRONMENT_CHANGE", "1")
    build_zoo(zoo, "ppo-trajectories", TINY, progress=False)  # the user said so
