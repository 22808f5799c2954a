#!/usr/bin/env bash
# Issue 14's GPU checks as one script (GPU time is short: run it once, read the log).
#   bash benchmarks/gpu_check.sh            # needs a CUDA device; writes $OUT (default gpu-check/)
# 1. the population engine against cuDNN nn.LSTM one at a time;
# 2. a formal-language zoo of 1,000 networks for 2,000 steps, its wall time projected to the
#    paper's 20,000 steps (target: under 15 minutes on one H100 for the paper's zoo);
# 3. four pretraining seeds one after another against one batched computation;
# 4. TIPL's transformer: training steps/s and the projected cost of 50k and the paper's 500k steps.
set -euo pipefail
OUT=${OUT:-gpu-check}
mkdir -p "$OUT"
PY=${PY:-.venv/bin/python}
WS=${WS:-.venv/bin/weightspace}
nvidia-smi --query-gpu=name,memory.total --format=csv | tee "$OUT/gpu.txt"
$PY benchmarks/population_training.py --device cuda --models 64 --steps 40 | tee "$OUT/population_training.txt"
$PY benchmarks/population_training.py --device cuda --models 1000 --steps 20 | tee "$OUT/population_training_1000.txt"
start=$(date +%s.%N)
$WS zoo build formal-languages --out "$OUT/zoo-1000" --models 1000 --population 1000 --steps 2000 \
    --checkpoints 0,2000 --device cuda --quiet | tee "$OUT/zoo.txt"
end=$(date +%s.%N)
python3 - "$start" "$end" <<'PY' | tee "$OUT/zoo_projection.txt"
import sys
seconds = float(sys.argv[2]) - float(sys.argv[1])
print(f"zoo of 1,000 networks x 2,000 steps: {seconds:.0f} s; projected to 20,000 steps: {seconds * 10 / 60:.1f} min "
      "(target: under 15 min on one H100)")
PY
$PY benchmarks/pretraining.py --device cuda --sizes paper,demo | tee "$OUT/pretraining.txt"
$PY benchmarks/tipl_training.py --device cuda --steps 2000 | tee "$OUT/tipl_training.txt"
