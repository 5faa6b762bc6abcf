#!/usr/bin/env bash
# The throughput benchmarks on a machine with a CUDA GPU, as one prepared run (issue 13): scoring base + K adapters
# against K+1 base passes and peft's mixed batch on a wider bf16 model, then training workers that keep the base
# model against a process per unit. Offline: the models are built here (a tiny Llama widened), nothing is fetched.
#
#   bash benchmarks/gpu.sh            # outputs in $OUT (or ./bench-gpu): nvidia-smi, scoring.txt, grid.txt
#
# The README reports GPU numbers only from a run of this script.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-bench-gpu}"
mkdir -p "$out"
export PYTHONUNBUFFERED=1
nvidia-smi > "$out/nvidia-smi.txt"
python -c "import torch; assert torch.cuda.is_available(), 'no CUDA device'; print(torch.cuda.get_device_name())"
# hidden 2048 x 8 layers, 32K vocabulary, bf16; 8 adapters r=8; 1,500 items; batch 32 rows
python benchmarks/bench_scoring.py --hidden-size 2048 --layers 8 --vocab 32000 --dtype bfloat16 --batch 32 \
    --items 125 --repeats 3 --skip-merge 2>&1 | tee "$out/scoring.txt"
python benchmarks/bench_grid.py --units 12 --causal-hidden 1024 --skip-executors 2>&1 | tee "$out/grid.txt"
