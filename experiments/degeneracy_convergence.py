"""How fast one paper 002 condition converges: trains its networks with the threshold trainer and
prints, every ``--every`` epochs, the median training MSE and how many have converged and are
still training. The numbers behind the demo's thresholds, learning rates and gamma grid
(docs/reproductions/degeneracy-demo.md).

    python experiments/degeneracy_convergence.py flip-flop --set batch_size=16 --set trial_steps=50 \
        --set learning_rate=0.005
    python experiments/degeneracy_convergence.py delayed-discrimination --set parametrisation=mean-field \
        --set gamma=1.0 --set learning_rate=0.01 --set plateau_patience=10 --set threshold=0.1
"""

from __future__ import annotations

import argparse
import time

import torch

from weightspace.experiments.config import parse_assignment
from weightspace.tasks import get_task


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("task")
    parser.add_argument(
        "--set",
        dest="assignments",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a task setting (TOML value); repeatable",
    )
    parser.add_argument("--epochs", type=int, default=400)
    parser.add_argument("--every", type=int, default=20, help="epochs between printed lines")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    task = get_task(args.task)
    settings = {"models": 16, "hidden_size": 64, "steps_per_epoch": 32}
    settings.update(dict(parse_assignment(a) for a in args.assignments))
    settings["steps"] = args.epochs * settings["steps_per_epoch"]
    config = task.config(settings, "--set")
    runs = task.plan(config)
    trainer = task.shard_task(runs, config, "cpu").make_trainer(task.architecture(config), runs, config, "cpu")
    print(f"{args.task}: {config.to_json()}")
    start, per_epoch = time.perf_counter(), config.steps_per_epoch
    while trainer.step < trainer.total_steps and trainer.active.any():
        trainer.train_step()
        if trainer.step % (per_epoch * args.every) == 0:
            print(
                f"epoch {trainer.step // per_epoch:4d}  {time.perf_counter() - start:6.0f} s  median MSE "
                f"{trainer.last_loss.median():.4g}  converged {int(trainer.converged.sum())}  "
                f"training {int(trainer.active.sum())}",
                flush=True,
            )
    print(f"stopped: {int(trainer.converged.sum())} of {len(runs)} converged; stop steps {trainer.stop_step.tolist()}")


if __name__ == "__main__":
    main()
