#!/usr/bin/env bash
# The benchmark table on a GPU machine, in one command:
#   bash benchmarks/gpu.sh            (writes gpu.json next to where it runs, or to $OUT/gpu.json)
# bf16 autocast and channels_last (train.py's and the predictor's defaults on a bf16 GPU), torch.compile of
# our train step and of the predictor model with Inductor freezing (compile times: train_first_step_s,
# infer_compile_s), batch 256, and the
# `loop` section: the train step fed by our DataLoader (data loading included) vs an in-memory batch (excluded).
# Peak host RSS is left out (the CPU table has it); the reference stays fp32 NCHW eager, as on the CPU.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-.}/gpu.json"
workers="${WORKERS:-$(( $(nproc) > 2 ? $(nproc) - 2 : 1 ))}"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
python benchmarks/run.py --device cuda --batch-size 256 --compile --predictor-compile --predictor-precision bf16 \
    --data-workers "$workers" --data-images 4096 --loop-batches 16 \
    --only train heads infer data loop accuracy --json "$out" "$@"
