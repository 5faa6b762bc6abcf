#!/usr/bin/env bash
# The GPU figures of issue 18 as one prepared run: three steps (benchmarks/gpu_bench.py scoring, training, lmeval),
# each under its own time limit (135 + 70 + 140 s: within 6 minutes on one H200, model builds included), printing
# every row of the issue's table with its goal as soon as it is measured, so a run cut short still reports.
# Offline: the models are tiny Llamas widened to the issue's shapes with random weights, built here.
#
#   bash benchmarks/gpu.sh                     # one CUDA GPU; outputs in $OUT (or ./bench-gpu)
#   bash benchmarks/gpu.sh --smoke             # the same rows at tiny sizes on any device (CI runs it on a CPU)
#   XLING_WHEELS=DIR bash benchmarks/gpu.sh    # first install DIR/*.whl (a machine without lm-eval, datasets,
#                                              # pydantic or duckdb, and no index: carry their wheels)
#
# Outputs: gpu-bench.txt (everything printed), rows.txt (the table's rows), nvidia-smi.txt. The exit status is 0
# only when every step finished. The README reports GPU numbers only from a run of this script.
set -uo pipefail
cd "$(dirname "$0")/.."
mode=full
if [[ "${1:-}" == "--smoke" ]]; then mode=smoke; fi
out="${OUT:-bench-gpu}"
mkdir -p "$out"
py="${PYTHON:-python3}"
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
if [[ -n "${XLING_WHEELS:-}" ]]; then
    site="$(mktemp -d)"
    "$py" -m pip install -q --no-index --no-deps --no-compile --target "$site" "$XLING_WHEELS"/*.whl || exit 2
    export PYTHONPATH="$PYTHONPATH:$site"
fi
work="$(mktemp -d)"  # models, adapters, tasks: kept between the steps, never copied to $out
trap 'rm -rf "$work"' EXIT
if [[ $mode == full ]]; then
    nvidia-smi > "$out/nvidia-smi.txt" 2>&1 || true
    limits=(135 70 140)
    flags=()
else
    limits=(150 150 150)
    flags=(--smoke)
fi
log="$out/gpu-bench.txt"
: > "$log"
echo "gpu.sh ($mode) at $(date -u +%Y-%m-%dT%H:%M:%SZ), xling $(git rev-parse --short HEAD 2>/dev/null || echo '?')" | tee -a "$log"
start=$SECONDS
status=0
i=0
for step in scoring training lmeval; do
    timeout --kill-after=5 "${limits[$i]}" "$py" benchmarks/gpu_bench.py "$step" --work "$work" \
        ${flags[@]+"${flags[@]}"} 2>&1 | grep --line-buffered -v -E "Warning|warnings.warn|it/s\]|examples/s\]|^\[Task: |^\{.train_runtime|^\s*$" | tee -a "$log"
    rc=${PIPESTATUS[0]}
    if [[ $rc == 124 || $rc == 137 ]]; then
        echo "[$step] cut at its ${limits[$i]} s limit: its rows not printed above were not measured" | tee -a "$log"
        status=1
    elif [[ $rc != 0 ]]; then
        echo "[$step] failed (exit $rc): its rows not printed above were not measured" | tee -a "$log"
        status=1
    fi
    i=$((i + 1))
done
echo "gpu.sh: $((SECONDS - start)) s in all" | tee -a "$log"
grep '^\[row' "$log" > "$out/rows.txt"
exit $status
