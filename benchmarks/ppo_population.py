"""PPO trials as one population against the same trials one after another (TIPL's zoo, papers 001/003).

Trains K trials of CleanRL's ppo_continuous_action on InvertedPendulum (policy 2 x 8, critic 64 x 64,
2,048-step rollouts, 32 minibatches, 10 epochs) for a few iterations twice, in one run, with the same
code path (``PopulationPPO``): once as one population of K, once as K populations of one. Prints
environment steps per second for each, where the time goes (MuJoCo stepping and gymnasium's
environment code, the rest of the rollout, the updates), the ratio, and the projected time of the
paper's 50 trials x 800k steps from a population of 50 measured the same way.

    python benchmarks/ppo_population.py
    python benchmarks/ppo_population.py --env HalfCheetah --trials 10 --iterations 2   # 2 x 256 policies

``--env HalfCheetah`` takes the paper's 2 x 256 policy and projects its 50 x 2M steps; every run
also prints the disk size of the paper's snapshots (2,000 or 5,000 per trial) as float32 and float16.
    python benchmarks/ppo_population.py --trials 16 --iterations 3 --no-projection
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
import torch

from weightspace.rl.mujoco import resolve_env_id
from weightspace.rl.ppo import PopulationPPO, PPOSettings

PAPER_TRIALS = 50
#: the paper's trials per environment: (env steps, policy hidden sizes, snapshots per trial)
PAPER = {"InvertedPendulum": (800_000, (8, 8), 2000), "HalfCheetah": (2_000_000, (256, 256), 5000)}


class Clock:
    """Seconds spent in MujocoEnvs.step (the environments) and in the rollouts and updates."""

    def __init__(self):
        self.env = self.collect = self.total = 0.0

    def run(self, ppo: PopulationPPO, iterations: int) -> None:
        step, collect = ppo.envs.step, ppo._collect

        def timed_step(actions):
            start = time.perf_counter()
            out = step(actions)
            self.env += time.perf_counter() - start
            return out

        def timed_collect():
            start = time.perf_counter()
            out = collect()
            self.collect += time.perf_counter() - start
            return out

        ppo.envs.step, ppo._collect = timed_step, timed_collect
        start = time.perf_counter()
        for _ in range(iterations):
            ppo.run_iteration()
        self.total += time.perf_counter() - start

    def line(self, label: str, env_steps: int) -> str:
        return (
            f"{label:<22} {env_steps / self.total:9.0f} env-steps/s  [{self.total:6.1f} s: environments "
            f"{self.env / self.total:4.0%}, rest of the rollouts {(self.collect - self.env) / self.total:4.0%}, "
            f"updates {(self.total - self.collect) / self.total:4.0%}]"
        )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=16, help="K (default 16)")
    parser.add_argument("--iterations", type=int, default=3, help="PPO iterations of 2,048 steps per trial")
    parser.add_argument("--env", default="InvertedPendulum")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1: the build's setting)")
    parser.add_argument("--no-projection", action="store_true", help="skip the population of 50")
    parser.add_argument("--policy-hidden", default=None, help="actor hidden sizes (default: the paper's for --env)")
    args = parser.parse_args(argv)
    paper_steps, hidden, snapshots = PAPER.get(args.env.split("-")[0], PAPER["InvertedPendulum"])
    if args.policy_hidden:
        hidden = tuple(int(h) for h in args.policy_hidden.split(","))
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    torch.set_num_threads(args.threads)
    env_id = resolve_env_id(args.env)
    settings = PPOSettings()
    total = settings.num_steps * args.iterations
    seeds = np.arange(args.trials)
    print(
        f"{env_id}: K={args.trials} trials x {args.iterations} iterations of {settings.num_steps} steps, "
        f"policy {' x '.join(map(str, hidden))}, critic 64 x 64, {torch.get_num_threads()} torch thread(s)"
    )
    together = Clock()
    together.run(PopulationPPO(env_id, seeds, total, hidden, (64, 64), settings), args.iterations)
    alone = Clock()
    for seed in seeds:
        alone.run(PopulationPPO(env_id, [seed], total, hidden, (64, 64), settings), args.iterations)
    env_steps = args.trials * total
    print(together.line("as one population", env_steps))
    print(alone.line("one after another", env_steps))
    if not args.no_projection:
        clock = Clock()
        clock.run(PopulationPPO(env_id, np.arange(PAPER_TRIALS), settings.num_steps, hidden, (64, 64), settings), 1)
        rate = PAPER_TRIALS * settings.num_steps / clock.total
        hours = PAPER_TRIALS * paper_steps / rate / 3600
        print(clock.line(f"population of {PAPER_TRIALS}", PAPER_TRIALS * settings.num_steps))
        print(
            f"projected: the paper's {PAPER_TRIALS} x {paper_steps:,} steps take {hours:.2f} h in one process at "
            f"this rate (first iteration: short episodes, the most resets); one by one "
            f"{PAPER_TRIALS * paper_steps / (env_steps / alone.total) / 3600:.2f} h"
        )
    parameters = PopulationPPO(env_id, [0], total, hidden, (64, 64), settings).actor().flatten().shape[1]
    stored = PAPER_TRIALS * (snapshots + 1) * parameters
    print(
        f"disk: the paper's {PAPER_TRIALS} x {snapshots + 1:,} snapshots of {parameters:,} parameters: "
        f"{stored * 4 / 1e9:.2f} GB as float32, {stored * 2 / 1e9:.2f} GB as float16 (weights_dtype)"
    )
    print(f"ratio: {alone.total / together.total:.2f}x")


if __name__ == "__main__":
    main()
