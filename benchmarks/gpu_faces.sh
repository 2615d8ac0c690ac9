#!/usr/bin/env bash
# Issue 21.4, for a session lent a GPU machine (the `device` tool): one call that builds N faces pairs
# on the GPU with the faces recipe's own commands, trains the label translator there and brings it
# back under $OUT, to be judged here like the CPU-built ones:
#
#   run(command="bash benchmarks/gpu_faces.sh", timeout_s=600)       # on the device machine
#   .venv/bin/python benchmarks/faces_translators.py ...              # here, on the exported translator
#
# N (default 1,000,000) and BATCH (G and f's batch per build task, default 512) are environment
# variables; the translator's hyper-parameters are the recipe's (LABEL_TRAINING). Not yet run: no machine has been lent to
# this project's tasks so far (docs/results.md).
set -euo pipefail
N=${N:-1000000}
BATCH=${BATCH:-512}
OUT=${OUT:-outputs/gpu-faces}
WORK=${WORK:-/tmp/gpu-faces}
PY=${PY:-python}
mkdir -p "$OUT" "$WORK"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | tee "$OUT/device.txt"
start=$(date +%s)
$PY -m pipelines.recipes.faces --stage build --stage histogram --work "$WORK" --num-pairs "$N" \
    --num-gpus 1 --batch-size "$BATCH" 2>&1 | grep -v "^\s" | tail -n 20
built=$(date +%s)
$PY -m pipelines.recipes.faces --stage train --translator label --work "$WORK" --use-gpu 2>&1 | grep -v "^\s" | tail -n 20
trained=$(date +%s)
tar -C "$WORK" -czf "$OUT/translator-label.tgz" translator-label histogram.json
printf '{"pairs": %s, "build_seconds": %s, "train_seconds": %s, "pairs_per_second": %s}\n' "$N" \
    $((built - start)) $((trained - built)) $((N / (built - start + 1))) | tee "$OUT/timings.json"
