"""Probing encoders: subject networks evaluated by the population engine vs one network at a time.

For N subject LSTMs (formal-language size, LSTM(6, 32, 2, 6), L = 22, M = 8; ``--task digits``:
LSTM(16, 32, 2, 10), L = 51) and each probing encoder with the paper's sizes, times per batch of N:

* ``subjects``: the subject-network evaluation alone, forward + backward through the subject
  outputs into the probes (a random cotangent on the log-probabilities), as in encoder training
  where the gradient flows through the frozen subjects into E_I. Non-interactive: the shared probe
  sequences (M, L, X) for all L steps at once; interactive: L single steps fed the probes the
  encoder generated (teacher-forced, so both sides do identical work).
* ``encoder``: the whole encoder forward + backward (E_I, subjects, E_O, E_R, head).

(a) ``population``: the weightspace population engine, all N networks per call (``forward`` /
``step``); (b) ``loop``: ``torch.func.functional_call`` over one ``nn.LSTM`` + ``nn.Linear``
module, one network at a time (N calls per batch, N x L for interactive). Both sides get the same
weights and probes; their results are checked to agree. The last line is the subject-evaluation
speedup over both encoders, ``speedup: <total loop time / total population time>x``.

    OMP_NUM_THREADS=1 python benchmarks/probing_evaluation.py --networks 64 --repeats 5
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from weightspace.encoders.base import TaskIO
from weightspace.encoders.probing import InteractiveProbing, NonInteractiveProbing
from weightspace.networks import LSTM

# the one-at-a-time reference encoders live with the tests that check the batched ones against them
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from probing_reference import REFERENCE  # noqa: E402

TASKS = {
    "formal-languages": (LSTM(6, 32, 2, 6), TaskIO("categorical", 6, "categorical", 6, 22)),
    "digits": (LSTM(16, 32, 2, 10), TaskIO("continuous", 16, "categorical", 10, 51)),
}
PAPER_COUNTS = {
    ("formal-languages", "probing"): 1_241_718,
    ("digits", "probing"): 1_254_016,
    ("formal-languages", "interactive"): 1_235_830,
    ("digits", "interactive"): 1_240_960,
}


# ---- (b) one network at a time through torch modules ---------------------------------------------
LOOP = REFERENCE


# ---- the timed work --------------------------------------------------------------------------
def subject_pass(encoder, weights, probes, cotangent):
    """Subjects' forward on ``probes`` and backward into them; returns (outputs, probe gradient)."""
    probes = probes.detach().requires_grad_()
    if isinstance(encoder, NonInteractiveProbing):
        outputs = encoder.run_subjects(weights, probes)  # probes (M, L, X) -> (N, M, L, Y)
    else:
        state = encoder.start_subjects(weights)
        steps = []
        for i in range(probes.shape[2]):  # probes (N, M, L, X), one step at a time
            out, state = encoder.step_subjects(weights, probes[:, :, i], state)
            steps.append(out)
        outputs = torch.stack(steps, dim=2)
    (F.log_softmax(outputs, -1) * cotangent).sum().backward()
    return outputs.detach(), probes.grad


def encoder_pass(encoder, weights, cotangent):
    encoder.zero_grad(set_to_none=True)
    z = encoder(weights)
    (z * cotangent).sum().backward()
    return z.detach(), encoder.probe_generator[0].weight.grad.clone()


def timed(fn, repeats):
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def max_diff(a, b):
    return (a - b).abs().max().item()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--networks", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--task", choices=sorted(TASKS), default="formal-languages")
    parser.add_argument("--encoders", nargs="+", choices=["probing", "interactive"], default=["probing", "interactive"])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    torch.manual_seed(args.seed)
    architecture, task = TASKS[args.task]
    weights = architecture.init(range(args.networks))
    N = args.networks
    print(
        f"task {args.task}: N={N} subjects {architecture}, L={task.probe_length}, M=8; "
        f"torch {torch.__version__}, {torch.get_num_threads()} thread(s); median of {args.repeats}"
    )

    totals = {"population": 0.0, "loop": 0.0}
    for cls in (NonInteractiveProbing, InteractiveProbing):
        if cls.name not in args.encoders:
            continue
        population = cls(architecture, task)
        loop = LOOP[cls](architecture, task)
        loop.load_state_dict(population.state_dict())
        print(
            f"\n{cls.name}: {population.num_parameters:,} parameters (paper: {PAPER_COUNTS[(args.task, cls.name)]:,})"
        )

        with torch.no_grad():
            probes = population.probe_inputs() if cls is NonInteractiveProbing else population.interrogate(weights)[1]
        out_shape = (N, population.probes, task.probe_length, task.output_size)
        cotangent = torch.randn(out_shape)
        z_cotangent = torch.randn(N, population.embedding_size)

        # agreement first: same subject outputs, probe gradients, embeddings and E_I gradients
        out_a, grad_a = subject_pass(population, weights, probes, cotangent)
        out_b, grad_b = subject_pass(loop, weights, probes, cotangent)
        z_a, g_a = encoder_pass(population, weights, z_cotangent)
        z_b, g_b = encoder_pass(loop, weights, z_cotangent)
        print(
            f"  max |population - loop|: outputs {max_diff(out_a, out_b):.1e}, probe grads "
            f"{max_diff(grad_a, grad_b):.1e}, embeddings {max_diff(z_a, z_b):.1e}, "
            f"E_I grads {max_diff(g_a, g_b):.1e}"
        )

        for what, run in [
            ("subjects", lambda e: subject_pass(e, weights, probes, cotangent)),
            ("encoder", lambda e: encoder_pass(e, weights, z_cotangent)),
        ]:
            t_pop = timed(lambda: run(population), args.repeats)
            t_loop = timed(lambda: run(loop), args.repeats)
            if what == "subjects":
                totals["population"] += t_pop
                totals["loop"] += t_loop
            print(
                f"  {what:8s} fwd+bwd per batch: population {t_pop * 1e3:8.2f} ms   "
                f"loop {t_loop * 1e3:8.2f} ms   ({t_loop / t_pop:.1f}x)"
            )

    print(
        f"\nsubject evaluation, all encoders: population {totals['population'] * 1e3:.2f} ms, "
        f"loop {totals['loop'] * 1e3:.2f} ms per batch"
    )
    print(f"speedup: {totals['loop'] / totals['population']:.1f}x")


if __name__ == "__main__":
    main()
