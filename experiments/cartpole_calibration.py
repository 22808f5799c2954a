"""Calibrate the CartPole zoo's ranges toward paper 004's survival-time group shares (35/13/14/39%).

Builds one wide zoo (training lengths log-uniform from ``--shortest`` to ``--steps``, learning
rates log-uniform over ``--lr-span``), then reads the group shares that narrower ranges would give
straight from it: a log-uniform draw restricted to a sub-range is log-uniform on that sub-range,
and a run's final network depends only on its own draws, so each candidate is a subset of the one
zoo. Subsets of a 1,024-run zoo are small, so the script also fits a multinomial logistic model of
the group on the run's draws (quadratic in log training length, log learning rate, discount,
final epsilon and log target period) and averages its probabilities over 20,000 draws from each
candidate range. Prints both tables, sorted by L1 distance to the paper's shares.

    python experiments/cartpole_calibration.py --out zoos/cartpole-calibration
"""

from __future__ import annotations

import argparse
import itertools

import numpy as np

from weightspace.tasks import cartpole
from weightspace.zoo import build_zoo, load_zoo

PAPER = np.array([25608, 9400, 10103, 28889]) / 74000


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--models", type=int, default=1024)
    parser.add_argument("--steps", type=int, default=8000)
    parser.add_argument("--shortest", type=int, default=40, help="shortest training length of the wide zoo")
    parser.add_argument("--learning-rate", type=float, default=0.02, help="top of the wide learning-rate range")
    parser.add_argument("--lr-span", type=float, default=16.0)
    args = parser.parse_args()
    out = build_zoo(
        args.out,
        "cartpole",
        {
            "models": args.models,
            "steps": args.steps,
            "population": 1024,
            "checkpoints": [0, args.steps],
            "learning_rate": args.learning_rate,
            "min_train_fraction": args.shortest / args.steps,
            "learning_rate_span": args.lr_span,
            "test_episodes": 100,
            "stored_episodes": 10,
        },
    )
    table = load_zoo(out).table
    final = table[table["step"] == args.steps]

    def shares(rows):
        return np.bincount(rows["group"].astype(int), minlength=5)[1:] / max(len(rows), 1)

    print(f"wide zoo: {len(final)} runs, shares {np.round(100 * shares(final), 1)}; paper {np.round(100 * PAPER, 1)}")
    low_lr = args.learning_rate / args.lr_span
    candidates = []
    for shortest, top_lr, span in itertools.product(
        [40, 80, 120, 200, 400],
        [args.learning_rate, args.learning_rate / 2, args.learning_rate / 4],
        [1.0, 2.0, 4.0, 8.0, 16.0],
    ):
        if top_lr / span < low_lr * 0.999:
            continue
        rows = final[
            (final["train_steps"] >= shortest)
            & (final["learning_rate"] <= top_lr * 1.0001)
            & (final["learning_rate"] >= top_lr / span * 0.9999)
        ]
        if len(rows) < 100:
            continue
        s = shares(rows)
        candidates.append((float(np.abs(s - PAPER).sum()), shortest, top_lr, span, len(rows), s))
    print("\nSubsets of the wide zoo:\n")
    print("| L1 to paper | shortest | top lr | lr span | runs | shares % (1-50, 51-100, 101-150, 151-200) |")
    print("|---|---|---|---|---|---|")
    for distance, shortest, top_lr, span, n, s in sorted(candidates)[:10]:
        print(
            f"| {distance:.3f} | {shortest} | {top_lr:g} | {span:g} | {n} | {' / '.join(f'{100 * v:.1f}' for v in s)} |"
        )
    _modelled(final, args.steps, low_lr, args.learning_rate)


def _modelled(final, steps, low_lr, top_lr):
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import PolynomialFeatures, StandardScaler

    def features(frame):
        return np.c_[
            np.log(np.maximum(frame["train_steps"], 1)),
            np.log(frame["learning_rate"]),
            frame["gamma"],
            frame["epsilon_final"],
            np.log(frame["target_update"]),
        ]

    model = make_pipeline(PolynomialFeatures(2), StandardScaler(), LogisticRegression(max_iter=5000))
    x, y = features(final), final["group"].astype(int).to_numpy()
    accuracy = cross_val_score(model, x, y, cv=5).mean()
    model.fit(x, y)
    rng, n = np.random.default_rng(0), 20000
    rows = []
    for shortest, low, top in itertools.product(
        [40, 80, 120, 160, 200, 300, 400, 600], [low_lr, 2 * low_lr, 4 * low_lr], [top_lr / 4, top_lr / 2, top_lr]
    ):
        if low >= top:
            continue

        def log_uniform(a, b):
            return np.exp(rng.uniform(np.log(a), np.log(b), n))

        draws = {
            "train_steps": log_uniform(shortest, steps + 1),
            "learning_rate": log_uniform(low, top),
            "gamma": rng.uniform(*cartpole.GAMMA_RANGE, n),
            "epsilon_final": rng.uniform(*cartpole.EPSILON_FINAL_RANGE, n),
            "target_update": log_uniform(*cartpole.TARGET_UPDATE_RANGE),
        }
        p = model.predict_proba(features(draws)).mean(0)
        rows.append((float(np.abs(p - PAPER).sum()), shortest, low, top, p))
    print(f"\nModelled (multinomial logistic, 5-fold accuracy {accuracy:.2f}):\n")
    print("| L1 to paper | shortest | lr range | shares % (1-50, 51-100, 101-150, 151-200) |")
    print("|---|---|---|---|")
    for distance, shortest, low, top, p in sorted(rows, key=lambda row: row[0])[:10]:
        print(f"| {distance:.3f} | {shortest} | {low:g}-{top:g} | {' / '.join(f'{100 * v:.1f}' for v in p)} |")


if __name__ == "__main__":
    main()
