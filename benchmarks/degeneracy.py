"""Dynamics degeneracy of a population of RNNs (Huang et al. 2025): reference vs ours, side by side.

DSA section: N random tanh RNNs (h_{t+1} = tanh(W h_t + noise), several trials each) give
hidden-state trajectories; the mean DSA distance over all N(N-1)/2 pairs is computed
  1. with dsa-metric (``--reference``): one ``DMD`` fit per network, then one
     ``SimilarityTransformDist`` search per pair, as its ``DSA`` class loops. A pair takes seconds,
     so only ``--reference-pairs`` pairs are timed and the time of all pairs is extrapolated
     (printed as such);
  2. with ``weightspace.analysis.dsa``: all DMD fits in one batch, all pairs in chunks.
Both use the reference's search (1500 Adam steps at lr 5e-3, two runs per pair). The two sides
start their searches from different random points, so their distances of the same pair agree only
up to the reference's own start-to-start spread (printed). Prints both times, the ratio, the time
our side projects for 50 networks (1,225 pairs), and as its last line ``speedup: <ratio>x``.

Training section: the same K flip-flop RNNs (``nn.RNN`` + ``nn.Linear``, same initial weights, same
trials) trained for S steps with Adam one network at a time, then as one population with
:class:`~weightspace.training.threshold.ThresholdTrainer` twice: on its PyTorch path (autograd over
the loop of time steps, the engine before the compiled RNN layer) and on the compiled layer
(``networks/rnn_kernel.py``; ``pytorch`` where it cannot be built). The trainer runs as a zoo build
runs it (torch ops on one thread, the compiled layer on ``--threads``). Prints network-steps/s of
each, the ratios (``training speedup``: the population against one at a time; ``compiled over
pytorch``), and what generating one batch of trials costs beside a population step. Give
``--train-units`` several sizes (``64,256``) to time each; the paper's batch is 64 trials of 100 steps.

NTK section (``--sections ntk``): the NTK alignment's kernels one network at a time (as the library
computes them) against one batched vjp of the population; prints both times.

    python benchmarks/degeneracy.py --networks 16 --units 128 --rank 30
"""

from __future__ import annotations

import argparse
import math
import sys
import time

import torch

from weightspace._allocator import keep_freed_memory
from weightspace.analysis.dsa import DEFAULT_CHUNK, DSASettings
from weightspace.threads import intra_op_threads

PAPER_NETWORKS = 50


def rnn_trajectories(networks: int, units: int, trials: int, steps: int, seed: int, device) -> torch.Tensor:
    """(networks, trials, steps, units): random tanh RNNs near the edge of chaos, driven by noise,
    each trial from its own random state; the first 20 steps (the transient) are dropped."""
    g = torch.Generator().manual_seed(seed)
    gain = torch.linspace(0.9, 1.5, networks).view(-1, 1, 1)  # mildly different dynamics
    W = gain * torch.randn(networks, units, units, generator=g) / math.sqrt(units)
    h = torch.randn(networks, trials, units, generator=g)
    states = []
    for _ in range(steps + 20):
        h = torch.tanh(h @ W.mT + 0.1 * torch.randn(networks, trials, units, generator=g))
        states.append(h)
    return torch.stack(states[20:], 2).to(device)


def reference_dsa(trajectories, settings: DSASettings, pairs: int, device):
    """dsa-metric, one network and one pair at a time. Returns (fit seconds, seconds per pair,
    {(i, j): distance} of the timed pairs)."""
    from DSA import DMD, SimilarityTransformDist

    start = time.perf_counter()
    operators = []
    for x in trajectories:
        dmd = DMD(
            x,
            n_delays=settings.n_delays,
            delay_interval=settings.delay_interval,
            rank=settings.rank,
            lamb=settings.ridge,
            device=device,
        )
        dmd.fit()
        operators.append(dmd.A_v)
    fit_seconds = time.perf_counter() - start

    search = SimilarityTransformDist(
        iters=settings.iterations, lr=settings.lr, score_method=settings.score_method, device=device
    )
    rows, cols = torch.tril_indices(len(operators), len(operators), -1)  # its DSA loop's order
    distances = {}
    start = time.perf_counter()
    for i, j in list(zip(rows.tolist(), cols.tolist()))[:pairs]:
        # fit_score normalises its inputs in place: give it copies.
        distances[i, j] = float(search.fit_score(operators[i].clone(), operators[j].clone()))
    return fit_seconds, (time.perf_counter() - start) / len(distances), distances


def batched_dsa(trajectories, settings: DSASettings, chunk_size: int, threads: int | None):
    """weightspace, batched. Returns (fit seconds, all-pairs seconds, (N, N) distances)."""
    start = time.perf_counter()
    operators = settings.fit_operators(trajectories, threads=threads)
    _sync(trajectories.device)
    fit_seconds = time.perf_counter() - start
    start = time.perf_counter()
    distances = settings.pairwise(operators, chunk_size=chunk_size, threads=threads)
    _sync(trajectories.device)
    return fit_seconds, time.perf_counter() - start, distances


def dsa_section(args) -> float:
    """Times both sides on the same trajectories; returns the speedup (or nan without reference)."""
    device = torch.device(args.device)
    settings = DSASettings(
        n_delays=args.delays,
        rank=args.rank,
        iterations=args.iterations,
        score_method=args.score_method,
        seed=args.seed,
        restarts=args.restarts,
    )
    if args.reference and args.restarts != 1:
        print(
            "error: --restarts other than 1 is ours alone (dsa-metric searches once): add --no-reference",
            file=sys.stderr,
        )
        raise SystemExit(2)
    N, pairs = args.networks, args.networks * (args.networks - 1) // 2
    x = rnn_trajectories(N, args.units, args.trials, args.steps, args.seed, device)
    print(
        f"DSA: N={N} tanh RNNs x {args.units} units, {args.trials} trials x {args.steps} steps; "
        f"{pairs} pairs; settings {settings.to_json()}; device {device}, "
        f"{torch.get_num_threads()} thread(s), torch {torch.__version__}"
    )

    warm_up = DSASettings(n_delays=1, rank=2, iterations=2)  # first-call costs, untimed
    batched_dsa(x[:2, :2, :10, :4], warm_up, args.chunk_size, args.threads)
    if args.reference:
        reference_dsa(x[:2, :2, :10, :4], warm_up, 1, args.device)
    ours_fit, ours_pairs, distances = batched_dsa(x, settings, args.chunk_size, args.threads)
    ours = ours_fit + ours_pairs
    off_diagonal = distances[~torch.eye(N, dtype=torch.bool, device=device)]
    print(
        f"  batched:     DMD fits {ours_fit:7.2f} s ({ours_fit / N:.3f} s/network), "
        f"{pairs} pairs {ours_pairs:7.2f} s ({ours_pairs / pairs:.3f} s/pair)  "
        f"total {ours:7.2f} s; mean distance {off_diagonal.mean():.4f}"
    )
    full = PAPER_NETWORKS * (PAPER_NETWORKS - 1) // 2
    print(
        f"  projected for {PAPER_NETWORKS} networks ({full:,} pairs), batched: "
        f"{ours_fit / N * PAPER_NETWORKS + ours_pairs / pairs * full:.0f} s "
        f"(fits x {PAPER_NETWORKS}/{N}, pairs x {full}/{pairs}; "
        f"chunks of {args.chunk_size} pairs)"
    )
    if not args.reference:
        return math.nan

    timed = min(args.reference_pairs, pairs)
    ref_fit, ref_per_pair, ref_distances = reference_dsa(x, settings, timed, args.device)
    reference = ref_fit + ref_per_pair * pairs
    print(
        f"  dsa-metric:  DMD fits {ref_fit:7.2f} s ({ref_fit / N:.3f} s/network), "
        f"{timed} of {pairs} pairs timed at {ref_per_pair:.2f} s/pair -> all pairs "
        f"{ref_per_pair * pairs:7.1f} s (extrapolated)  total {reference:7.1f} s"
    )
    gaps = [abs(d - distances[i, j].item()) / d for (i, j), d in ref_distances.items()]
    print(
        f"  same pairs, different random starts: relative difference max {max(gaps):.2%}, "
        f"mean {sum(gaps) / len(gaps):.2%}"
    )
    print(f"  ratios: DMD fits {ref_fit / ours_fit:.1f}x, pairs {ref_per_pair * pairs / ours_pairs:.1f}x")
    return reference / ours


def training_section(args) -> float:
    """Population training against a loop over networks, per width; returns the last ratio."""
    ratio = math.nan
    for units in (int(u) for u in str(args.train_units).split(",")):
        ratio = _training(args, units)
    return ratio


def _training(args, units: int) -> float:
    import numpy as np

    from weightspace import counter_rng
    from weightspace.networks import RNN, fused_cpu
    from weightspace.tasks import trials
    from weightspace.training.threshold import StoppingRule, ThresholdTrainer, masked_mse

    K, S, device = args.train_networks, args.train_steps, torch.device(args.device)
    architecture = RNN(3, units, 1, 3)
    keys = np.arange(K) + 1
    start = time.perf_counter()
    data = [
        trials.flip_flop(keys, counter_rng.stream_id("benchmark", s), args.train_batch, args.train_trial_steps).to(
            device
        )
        for s in range(S)
    ]
    generation = (time.perf_counter() - start) / S
    initial = architecture.init(keys, device)
    print(
        f"training: K={K} flip-flop RNNs x {units} units, batch {args.train_batch} x "
        f"{args.train_trial_steps} steps, {S} Adam steps; device {device}"
    )

    def loop():
        for k in range(K):
            module = architecture.to_torch(initial, k)
            optimizer = torch.optim.Adam(module.parameters(), lr=1e-3)
            for t in data:
                loss = masked_mse(module(t.inputs[k])[0].unsqueeze(0), t.targets[k : k + 1], t.mask[k : k + 1])
                optimizer.zero_grad()
                loss.sum().backward()
                optimizer.step()

    def population():
        rule = StoppingRule(threshold=1e-12, steps_per_epoch=S, max_epochs=1)
        trainer = ThresholdTrainer(
            architecture, initial, lambda s, n: (data[s].inputs, data[s].targets, data[s].mask), rule, [1e-3] * K
        )
        trainer.run([S], lambda step, weights: None)

    def pytorch_path():
        with fused_cpu.disabled():
            population()

    print(f"  compiled RNN layer: {fused_cpu.kernel_path()}")
    seconds = {}
    for name, fn in (("one at a time", loop), ("population, pytorch", pytorch_path), ("population", population)):
        start = time.perf_counter()
        fn()
        _sync(device)
        seconds[name] = time.perf_counter() - start
        print(f"  {name:19s}: {K * S / seconds[name]:8.1f} network-steps/s ({seconds[name]:.2f} s)")
    step = seconds["population"] / S
    print(f"  trials of one step: {1e3 * generation:.1f} ms beside {1e3 * step:.1f} ms of a population step")
    print(f"  compiled over pytorch: {seconds['population, pytorch'] / seconds['population']:.2f}x")
    ratio = seconds["one at a time"] / seconds["population"]
    print(f"training speedup: {ratio:.1f}x")
    return ratio


def ntk_section(args) -> float:
    """The NTK alignment's kernels: one Jacobian per network (what weightspace.analysis.degeneracy
    does) against one vjp of the whole population vmapped over the output rows; returns the ratio
    (loop time / batched time)."""
    from weightspace.analysis.degeneracy import tangent_kernels
    from weightspace.networks import RNN
    from weightspace.networks.weights import Population

    K, every = args.train_networks, 10
    architecture = RNN(3, args.train_units, 1, 3)
    weights = architecture.init(list(range(K)))
    inputs = torch.randn(K, 4, args.train_trial_steps, 3, generator=torch.Generator().manual_seed(args.seed))

    def batched():
        names = list(weights.keys())

        def outputs(*tensors):
            out = architecture.forward(Population(weights.spec, dict(zip(names, tensors))), inputs)[0]
            return out[:, :, every - 1 :: every].reshape(K, -1)

        out, vjp = torch.func.vjp(outputs, *(weights[n] for n in names))
        R = out.shape[1]
        rows = torch.vmap(vjp)(torch.eye(R).unsqueeze(1).expand(R, K, R))
        jacobian = torch.cat([g.reshape(R, K, -1) for g in rows], dim=2).transpose(0, 1)
        return jacobian @ jacobian.mT

    seconds, kernels = {}, {}
    for name, fn in (
        ("one per network", lambda: tangent_kernels(architecture, weights, inputs, every)),
        ("population vjp", batched),
    ):
        fn()  # warm-up
        start = time.perf_counter()
        kernels[name] = fn()
        seconds[name] = time.perf_counter() - start
        print(f"  NTK {name:15s}: {seconds[name]:.3f} s")
    same = torch.allclose(kernels["one per network"], kernels["population vjp"], rtol=1e-4, atol=1e-5)
    ratio = seconds["one per network"] / seconds["population vjp"]
    print(
        f"NTK kernels of K={K} RNNs x {args.train_units} units, 4 trials x {args.train_trial_steps} steps: "
        f"same kernels {same}; batched is {ratio:.2f}x the speed of the loop"
    )
    return ratio


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--networks", type=int, default=16)
    parser.add_argument("--units", type=int, default=128)
    parser.add_argument("--rank", type=int, default=30)
    parser.add_argument("--delays", type=int, default=10, help="n_delays of the Hankel embedding")
    parser.add_argument("--trials", type=int, default=16)
    parser.add_argument("--steps", type=int, default=100, help="time steps per trial")
    parser.add_argument("--iterations", type=int, default=1500, help="Adam steps per search")
    parser.add_argument(
        "--restarts",
        type=int,
        default=1,
        help="ours: the best of 2 x restarts searches per pair (the cost of [analysis] restarts; with --no-reference)",
    )
    parser.add_argument("--score-method", choices=["euclidean", "angular"], default="euclidean")
    parser.add_argument("--chunk-size", type=int, default=DEFAULT_CHUNK, help="pairs per batch")
    parser.add_argument(
        "--reference",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also time dsa-metric (needs `pip install dsa-metric==2.0.2`)",
    )
    parser.add_argument(
        "--reference-pairs", type=int, default=3, help="dsa-metric pairs to time; the rest is extrapolated"
    )
    parser.add_argument(
        "--threads", type=int, default=1, help="torch intra-op threads for both sides (0: torch's setting)"
    )
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--train-networks", type=int, default=16)
    parser.add_argument("--train-units", default="64", help="hidden sizes, comma-separated (64,256)")
    parser.add_argument("--train-batch", type=int, default=16)
    parser.add_argument("--train-trial-steps", type=int, default=50)
    parser.add_argument("--train-steps", type=int, default=20)
    parser.add_argument(
        "--sections", default="training,dsa", help="which sections to run, in order: training, dsa, ntk"
    )
    args = parser.parse_args(argv)
    args.threads = args.threads or None
    keep_freed_memory()  # as the command line does

    speedup = math.nan
    with intra_op_threads(args.threads):
        for section in args.sections.split(","):
            if section == "training":
                training_section(args)
            elif section == "ntk":
                ntk_section(args)
            elif section == "dsa":
                speedup = dsa_section(args)
    if not math.isnan(speedup):
        print(f"speedup: {speedup:.1f}x")


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


if __name__ == "__main__":
    main()
