#!/usr/bin/env bash
# The GPU targets in one prepared run (issue 15; about 10 minutes on an H200, most of it compiling):
#   bash benchmarks/gpu.sh            (writes gpu.json and gpu-checks.txt next to where it runs, or to $OUT/)
# First the CUDA-only tests of the device pipeline and of the predictor's CUDA graphs (their outcome is recorded,
# the timing runs either way), then, at batch 256 with bf16 autocast, channels_last and torch.compile of our train
# step (train.py's defaults on a bf16 GPU):
#   loop     the train step fed by our DataLoader (workers), by the device pipeline, and on an in-memory batch;
#   trainpy  train.py end to end (data included, 224 px, device_data auto) over the loop's in-memory rate;
#   infer    the predictor (bf16, compile=True, CUDA graphs, fed uint8) vs the reference, batch 256 and 1, both
#            from host memory (the host-to-device copy counted);
#   device   the device pipeline's images/s vs our DataLoader's, no model;
#   accuracy the demo recipe trained with --device-data on vs off (same seed).
# Other sections: bash benchmarks/gpu.sh --only train heads data (the last --only wins).
set -uo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-.}"
workers="${WORKERS:-$(( $(nproc) > 2 ? $(nproc) - 2 : 1 ))}"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
python -m pytest -q -p no:cacheprovider tests/data/test_device_pipeline.py tests/inference/test_predictor_feeding.py \
    -k cuda 2>&1 | tail -n 25 | tee "$out/gpu-checks.txt"
set -e
python benchmarks/run.py --device cuda --batch-size 256 --compile --predictor-compile --predictor-precision bf16 \
    --data-workers "$workers" --data-images 4096 --loop-batches 16 --accuracy-compare device-data \
    --only loop trainpy infer device accuracy --json "$out/gpu.json" "$@"
