"""Build cost of the fused LSTM pointwise kernel: our ctypes build vs torch's ``load_inline``.

The issue asked us to consider ``torch.utils.cpp_extension.load_inline`` for the kernel's build
and cache. This measures, side by side in one run and each into an empty cache, the cold build of
``networks/_lstm_pointwise.c`` by :mod:`weightspace.networks.fused_cpu` (system C compiler, ctypes)
and of a one-line ``load_inline`` extension (the least any torch C++ extension costs: torch's
headers and pybind11), then prints the ratio. Every fresh machine (CI included) pays the cold build
once per cache.

    python benchmarks/kernel_build.py
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time

OURS = "from weightspace.networks import fused_cpu; assert fused_cpu.available()"
INLINE = (
    "from torch.utils.cpp_extension import load_inline; "
    "load_inline('probe_ext', cpp_sources='torch::Tensor twice(torch::Tensor x){return x*2;}', "
    "functions=['twice'])"
)


def cold(code: str) -> float:
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "XDG_CACHE_HOME": cache, "TORCH_EXTENSIONS_DIR": os.path.join(cache, "ext")}
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True, env=env)
        return time.perf_counter() - start


def main():
    ours = cold(OURS)
    inline = cold(INLINE)
    print(f"fused kernel, ctypes build (cold, incl. interpreter and torch import): {ours:6.1f} s")
    print(f"load_inline, one-line extension (cold, incl. the same):             {inline:6.1f} s")
    print(f"load_inline / ctypes build: {inline / ours:.1f}x")


if __name__ == "__main__":
    main()
