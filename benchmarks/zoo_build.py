"""A real zoo build with the fused LSTM kernel against the same build without it, side by side.

Runs ``weightspace zoo build`` as a user does (a fresh process each time, into an empty
directory), alternating the fused path and ``WEIGHTSPACE_FUSED=0``, and prints the CPU, the kernel
path that ran, each build's wall time and as its last line ``zoo build speedup: <x>x`` (median
unfused time over median fused time). The default zoo is the one of issue 28: 64 formal-language
networks x 150 steps, checkpoints 0 and 150, 200 samples, 20 rollouts, seed 5.

    python benchmarks/zoo_build.py
    python benchmarks/zoo_build.py --repeats 3
    WEIGHTSPACE_KERNEL_ISA=x86-64-v3 python benchmarks/zoo_build.py      # force the AVX2 build
    python benchmarks/zoo_build.py --task digits --models 16 --steps 400 --checkpoints 0,100,200,400 \
        --samples 300 --rollouts 50
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CLI = [sys.executable, "-m", "weightspace.cli"]


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def kernel_path(env) -> str:
    code = "from weightspace.networks import fused_cpu; print(fused_cpu.kernel_path())"
    return subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    ).stdout.strip()


def build_seconds(arguments: list[str], env) -> float:
    """Wall time of one build, from process start, into a fresh directory."""
    with tempfile.TemporaryDirectory() as scratch:
        start = time.perf_counter()
        subprocess.run(
            [*CLI, "zoo", "build", *arguments, "--out", str(Path(scratch) / "zoo"), "--quiet"],
            env=env,
            check=True,
            stdout=subprocess.DEVNULL,
        )
        return time.perf_counter() - start


def zoo_arguments(args) -> list[str]:
    arguments = [args.task, "--models", str(args.models), "--steps", str(args.steps), "--seed", str(args.seed)]
    for flag in ("checkpoints", "samples", "rollouts", "population"):
        value = getattr(args, flag)
        if value is not None:
            arguments += [f"--{flag}", str(value)]
    return arguments


def compare(arguments: list[str], repeats: int) -> tuple[list[float], list[float], str]:
    """Fused and unfused build times, alternated, and the fused path's name."""
    fused_env = {k: v for k, v in os.environ.items() if k != "WEIGHTSPACE_FUSED"}
    unfused_env = {**fused_env, "WEIGHTSPACE_FUSED": "0"}
    path = kernel_path(fused_env)  # also builds the library, so no build pays for the compile
    fused, unfused = [], []
    for _ in range(repeats):
        fused.append(build_seconds(arguments, fused_env))
        unfused.append(build_seconds(arguments, unfused_env))
    return fused, unfused, path


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--task", default="formal-languages")
    parser.add_argument("--models", type=int, default=64)
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--checkpoints", default="0,150")
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--rollouts", type=int, default=20)
    parser.add_argument("--population", type=int, default=None)
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=1, help="builds of each path, alternated")
    args = parser.parse_args()
    arguments = zoo_arguments(args)
    fused, unfused, path = compare(arguments, args.repeats)
    print(f"CPU: {cpu_model()}; {os.cpu_count()} cores; kernel path: {path}")
    print(f"zoo: weightspace zoo build {' '.join(arguments)}")
    print(f"fused   (default)            {' '.join(f'{t:7.1f} s' for t in fused)}")
    print(f"unfused (WEIGHTSPACE_FUSED=0) {' '.join(f'{t:7.1f} s' for t in unfused)}")
    print(f"zoo build speedup: {statistics.median(unfused) / statistics.median(fused):.2f}x")


if __name__ == "__main__":
    main()
