"""CartPole zoo: the batched population DQN vs a plain per-network loop, side by side in one run.

Both train networks of the cartpole zoo's plan (same hyperparameters, same training lengths, same
counter-based random draws) with the same algorithm (weightspace.rl.dqn) and measure their survival
time at the start and the end, as a zoo build does:
  1. one network at a time: nn.Sequential + torch.optim.AdamW + gymnasium's CartPoleEnv, and the
     100 test episodes played one by one;
  2. all networks together: ``build_zoo`` of the cartpole task (PopulationDQN, batched rollouts,
     files written).
Prints networks trained per hour for each, the ratio, the projected time for the paper's 74,000
networks, and as its last line ``speedup: <ratio>x``.

    python benchmarks/cartpole_zoo.py --models 1024 --loop-models 8
"""

from __future__ import annotations

import argparse
import copy
import tempfile
import time

import numpy as np
import torch
import torch.nn.functional as F
from gymnasium.envs.classic_control.cartpole import CartPoleEnv

from weightspace import counter_rng
from weightspace._allocator import keep_freed_memory
from weightspace.rl.cartpole import CARTPOLE_NET, RESET_BOUND, test_initial_states
from weightspace.rl.dqn import DQNSettings
from weightspace.tasks import get_task
from weightspace.tasks.cartpole import _settings
from weightspace.zoo import build_zoo, load_zoo

PAPER_NETWORKS = 74_000


def survival_one(module, episodes: int, cap: int) -> float:
    """Mean test-episode length of one network, playing gymnasium's single environment."""
    env = CartPoleEnv()
    lengths = []
    for initial in test_initial_states(episodes):
        env.reset()
        env.state = initial.copy()
        observation, length = initial.astype(np.float32), 0
        while length < cap:
            with torch.no_grad():
                action = int(module(torch.from_numpy(observation)).argmax())
            observation, _, terminated, _, _ = env.step(action)
            length += 1
            if terminated:
                break
        lengths.append(length)
    return float(np.mean(lengths))


def train_one(run, settings: DQNSettings, episodes: int) -> tuple[float, float]:
    """The algorithm of weightspace.rl.dqn for one network, written as a plain loop."""
    key = [int(run.seed)]
    module = CARTPOLE_NET.to_torch(CARTPOLE_NET.init(key), 0)
    initial_survival = survival_one(module, episodes, settings.max_episode_steps)
    target = copy.deepcopy(module)
    optimizer = torch.optim.AdamW(
        module.parameters(),
        lr=float(run.learning_rate),
        weight_decay=float(run.weight_decay),
        betas=settings.adam_betas,
        eps=settings.adam_eps,
    )
    env = CartPoleEnv()

    def start(step):
        draw = counter_rng.uniform(key, counter_rng.stream_id("episode-start", step), (1, 4))[0, 0].numpy()
        env.reset()
        env.state = (draw.astype(np.float64) * 2 - 1) * RESET_BOUND
        return 0

    episode_step = start(0)
    C = settings.replay_capacity
    replay = torch.zeros(C, 11)
    for t in range(int(run.train_steps)):
        observation = torch.from_numpy(np.asarray(env.state, dtype=np.float32))
        progress = min(t / max(float(run.exploration_steps), 1.0), 1.0)
        epsilon = settings.epsilon_start + (float(run.epsilon_final) - settings.epsilon_start) * progress
        draw = counter_rng.uniform(key, counter_rng.stream_id("explore", t), (1, 2))[0, 0]
        if draw[0] < epsilon:
            action = int(draw[1] < 0.5)
        else:
            with torch.no_grad():
                action = int(module(observation).argmax())
        next_observation, _, terminated, _, _ = env.step(action)
        episode_step += 1
        replay[t % C] = torch.cat(
            [
                observation,
                torch.tensor([action, 1.0]),
                torch.from_numpy(next_observation),
                torch.tensor([float(terminated)]),
            ]
        )
        if terminated or episode_step >= settings.max_episode_steps:
            episode_step = start(t + 1)
        stored = min(t + 1, C)
        if stored >= settings.learning_starts:
            index = counter_rng.integers(key, counter_rng.stream_id("replay", t), 0, stored, (settings.batch_size,))[0]
            batch = replay[index]
            with torch.no_grad():
                next_q = target(batch[:, 6:10]).amax(-1)
                target_q = batch[:, 5] + float(run.gamma) * (1 - batch[:, 10]) * next_q
            q = module(batch[:, :4]).gather(-1, batch[:, 4:5].long()).squeeze(-1)
            loss = F.huber_loss(q, target_q, delta=settings.huber_delta)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        if (t + 1) % int(run.target_update) == 0:
            target.load_state_dict(module.state_dict())
    return initial_survival, survival_one(module, episodes, settings.max_episode_steps)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", type=int, default=1024, help="networks trained by the batched trainer")
    parser.add_argument("--loop-models", type=int, default=8, help="networks trained one at a time")
    parser.add_argument("--steps", type=int, default=8000, help="longest training length (the zoo's --steps)")
    parser.add_argument("--episodes", type=int, default=100, help="test episodes per survival time")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads of the one-at-a-time loop (the population trainer always uses 1, see weightspace.threads)",
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    keep_freed_memory()  # as the CLI does
    torch.set_num_threads(args.threads)
    task = get_task("cartpole")
    config = task.config(
        dict(
            models=args.models,
            steps=args.steps,
            checkpoints=(0, args.steps),
            seed=args.seed,
            population=args.models,
            test_episodes=args.episodes,
            stored_episodes=min(10, args.episodes),
        )
    )
    plan = task.plan(config)
    mean_length = plan["train_steps"].mean()
    print(
        f"cartpole zoo: {args.models} networks batched, {args.loop_models} one at a time; training lengths "
        f"{plan['train_steps'].min()}..{args.steps} (mean {mean_length:.0f}), {args.episodes} test episodes, "
        f"{torch.get_num_threads()} torch threads"
    )

    start = time.perf_counter()
    loop_results = [
        train_one(run, _settings(config), args.episodes) for run in plan.head(args.loop_models).itertuples()
    ]
    t_loop = time.perf_counter() - start
    # per network, scaled to the plan's mean training length (the loop's few networks are not average)
    loop_steps = plan["train_steps"].head(args.loop_models).sum()
    loop_rate = 3600 / (t_loop / loop_steps * mean_length)

    with tempfile.TemporaryDirectory() as directory:
        start = time.perf_counter()
        build_zoo(f"{directory}/zoo", task, config, progress=False)
        t_batched = time.perf_counter() - start
        table = load_zoo(f"{directory}/zoo").table
    batched_rate = args.models * 3600 / t_batched

    final = table[table["step"] == args.steps].set_index("run_id")["survival_time"]
    loop_final = np.array([r[1] for r in loop_results])
    print(
        f"one at a time (nn.Sequential, gymnasium CartPoleEnv) {loop_rate:10,.0f} networks/hour "
        f"[{t_loop:.1f} s for {args.loop_models} networks, {loop_steps:,} steps]"
    )
    print(
        f"population (PopulationDQN, batched rollouts)         {batched_rate:10,.0f} networks/hour "
        f"[{t_batched:.1f} s for {args.models} networks, {plan['train_steps'].sum():,} steps]"
    )
    print(
        f"same networks, final survival time: loop {np.round(loop_final, 1).tolist()}, "
        f"batched {np.round(final.head(args.loop_models).to_numpy(), 1).tolist()}"
    )
    print(
        f"batched zoo: mean survival time {final.mean():.1f}; groups "
        f"{np.bincount(np.searchsorted([50, 100, 150], final.to_numpy()), minlength=4).tolist()}"
    )
    print(
        f"projected for {PAPER_NETWORKS:,} networks on this machine: batched {PAPER_NETWORKS / batched_rate:.2f} h, "
        f"one at a time {PAPER_NETWORKS / loop_rate:.1f} h"
    )
    print(f"speedup: {batched_rate / loop_rate:.1f}x")


if __name__ == "__main__":
    main()
