#!/usr/bin/env bash
# Issue 35.5, for a session lent a GPU machine (the `device` tool): serve zoo:faces on a GPU sampler
# replica (ray_actor_options num_gpus: 1, device cuda) and drive it with the load of
# benchmarks/serve_load.py (1, 16 and 64 closed-loop clients; batches of 16 and 64), beside the same
# sampler in-process on the GPU. One call; what it writes comes back under $OUT:
#
#   run(command="bash benchmarks/gpu_serve_faces.sh", timeout_s=600)     # on the device machine
#
# $OUT/serve_load.md holds the tables (levels, stage breakdown, served / in-process), serve_load.json
# every figure, serve_load.log the progress lines, device.txt the GPU. REQUESTS (per client, default 8),
# CLIENTS, BATCH_SIZES and PY are environment variables. Not yet run: written on the 2-core CPU machine.
set -euo pipefail
OUT=${OUT:-outputs/gpu-serve-faces}
PY=${PY:-python}
REQUESTS=${REQUESTS:-8}
CLIENTS=${CLIENTS:-1,16,64}
BATCH_SIZES=${BATCH_SIZES:-16,64}
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | tee "$OUT/device.txt"
$PY -c "import torch; assert torch.cuda.is_available(), 'torch sees no GPU'"
# 4 CPUs per replica: on a GPU the per-step Python and the PNG encoding, not the math, bound a replica.
timeout 560 $PY benchmarks/serve_load.py --world zoo:faces --device cuda --sampler-gpus 1 --sampler-cpus 4 \
    --ray-cpus 8 --clients "$CLIENTS" --batch-sizes "$BATCH_SIZES" --requests-per-client "$REQUESTS" \
    --max-seconds 60 --json "$OUT/serve_load.json" > "$OUT/serve_load.md" 2> >(tee "$OUT/serve_load.log" >&2)
cat "$OUT/serve_load.md"
