#!/usr/bin/env bash
# The GPU checks, in one run on a machine with CUDA and PyTorch (never in CI):
#   bash scripts/gpu_check.sh [OUT_DIR]
# 1. the GPU test subset (pytest -m gpu); 2. the README main job on the
# embedded model, timed; 3. a small ShapesBench run (plain, Null-TTA, fast)
# for GPU time ratios; 4. benchmarks/inner_step.py at 512x512 on the SD1.5
# architecture. Wheels in .whl/ (e.g. diffusers) are installed first if present.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-${OUT:-/tmp/nulltta-gpu}}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
if compgen -G ".whl/*.whl" > /dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .whl/*.whl || exit 1
    export PYTHONPATH="/tmp/site:$PWD"
else
    export PYTHONPATH="$PWD"
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
python3 -c "import torch, diffusers, transformers; print('torch', torch.__version__, 'diffusers', diffusers.__version__, 'transformers', transformers.__version__)"

echo "== 1. GPU tests"
python3 -m pytest -m gpu tests/core/test_gpu.py -q -p no:cacheprovider 2>&1 | tee "$OUT/gpu_tests.log"

echo "== 2. main job on the embedded model (default schedule), CUDA"
nulltta_cli() { python3 -c 'import sys; from nulltta.cli import main; sys.exit(main())' "$@"; }
start=$(date +%s%N)
nulltta_cli generate "a red circle on a white background" --device cuda \
    --out /tmp/main_job --quiet 2>&1 | tail -20 | tee "$OUT/main_job.log"
echo "main job wall ms (incl. start-up): $((($(date +%s%N) - start) / 1000000))" \
    | tee -a "$OUT/main_job.log"
cp /tmp/main_job/aligned.png /tmp/main_job/plain.png /tmp/main_job/history.json "$OUT/" 2>/dev/null

echo "== 3. small ShapesBench on CUDA"
python3 -c "from nulltta.bench.shapesbench import shapesbench_prompts as p; print('\n'.join(p(4)))" \
    > /tmp/prompts4.txt
nulltta_cli bench --model embedded --methods plain nulltta nulltta-fast greedy \
    --prompts /tmp/prompts4.txt --seeds 0 --steps 20 --guidance-scale 5.0 --device cuda \
    --title "ShapesBench on CUDA (4 prompts, seed 0)" --out /tmp/bench_gpu --quiet 2>&1 | tail -5
cp /tmp/bench_gpu/results.md "$OUT/bench_gpu.md" 2>/dev/null

echo "== 4. inner step at 512x512, SD1.5 architecture, CUDA"
python3 benchmarks/inner_step.py --device cuda --resolution 512 --rounds 2 --repeats 5 \
    --threads 4 --json "$OUT/inner_step_cuda512.json" 2>&1 | tee "$OUT/inner_step_cuda512.log"
