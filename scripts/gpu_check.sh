#!/usr/bin/env bash
# Every GPU measurement of issues 13 and 14 in one run, within ten minutes of wall time:
#   bash scripts/gpu_check.sh [OUT_DIR]          # on a machine with one CUDA GPU
#   CPU_SMOKE=1 bash scripts/gpu_check.sh [DIR]  # every command, tiny sizes, on the CPU
#                                                # (budgets x BUDGET_SCALE, 10 by default)
#
# OUT_DIR (default $OUT, else /tmp/nulltta-gpu) receives three files: gpu_check.log (this
# output), summary.txt (a line per part: status, wall time, budget) and results.tar.gz
# (every part's log and JSON, rewritten after each part, so a cut-off run keeps what
# finished). Work files go to $WORK (default /tmp/nulltta-gpu-work).
#
# Parts, each under `timeout` with its own budget (a failed or timed-out part does not
# stop the next; the budgets are also cut to what is left of GPU_CHECK_SECONDS, 600):
#   prep        versions, nvidia-smi, SD1.5 architecture with random weights saved once
#   a_gpu_tests pytest -m gpu
#   b_main_job  the README main job on the embedded model on CUDA, timed (target < 10 s)
#   e1_image    one SD1.5 512x512 image, the paper's schedule (100 steps, n 5-25, K 3), exact
#               settings at the default ("auto") precision; PickScore's architecture with
#               random weights as the reward (target < 60 s per image)
#   f1_inner    benchmarks/inner_step.py at 512x512: release/cached, fp32/bf16/auto, the
#               light gradient decoder (random AutoencoderTiny, TAESD's config)
#   g_floor     f1's inner steps against benchmarks/results/flops.json's counted floor
#   c_throughput benchmarks/throughput.py: batch sizes 1, 2, 4, 8, short schedule
#   d_vs_release benchmarks/vs_release.py on SD1.5 (random weights) at 512, 2 pairs
#   e2_compile  e1's image with compile_mode="reduce-overhead", compile time apart
#   f2_compile  the inner step with compile_mode="reduce-overhead"; g_floor2 again with it
# Wheels in .whl/ (e.g. diffusers, which the GPU image lacks) are installed first.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-${OUT:-/tmp/nulltta-gpu}}
WORK=${WORK:-/tmp/nulltta-gpu-work}
SMOKE=${CPU_SMOKE:-0}
# Budgets are multiplied by SCALE (the smoke run on a slow shared CPU needs more).
if [ "$SMOKE" = 1 ]; then SCALE=${BUDGET_SCALE:-10}; else SCALE=${BUDGET_SCALE:-1}; fi
TOTAL=${GPU_CHECK_SECONDS:-$((600 * SCALE))}
mkdir -p "$OUT" "$WORK/logs"
exec > >(tee "$OUT/gpu_check.log") 2>&1
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 CPU_SMOKE=$SMOKE
if [ -x .venv/bin/python ] && [ "$SMOKE" = 1 ]; then PY=${PYTHON:-.venv/bin/python}; else PY=${PYTHON:-python3}; fi
START=$(date +%s)
SUMMARY="$OUT/summary.txt"
: > "$SUMMARY"

if [ "$SMOKE" = 1 ]; then
    DEVICE=cpu RES=16 SD="$WORK/tiny-sd" IMAGE_STEPS=2
else
    DEVICE=cuda RES=512 SD="$WORK/sd15-random" IMAGE_STEPS=100
fi
export IMAGE_STEPS

# part NAME BUDGET_S COMMAND...: run under timeout, log to $WORK/logs/NAME.log, one summary line.
part() {
    local name=$1 budget=$(($2 * SCALE)) left status rc t0 ms
    shift 2
    left=$((TOTAL - ($(date +%s) - START)))
    if [ "$left" -lt 15 ]; then
        printf '%-13s SKIPPED (no time left)\n' "$name" | tee -a "$SUMMARY"
        return
    fi
    [ "$budget" -gt "$left" ] && budget=$left
    echo "== $name (budget ${budget} s)"
    t0=$(date +%s%N)
    timeout -k 5 "$budget" "$@" > "$WORK/logs/$name.log" 2>&1
    rc=$?
    ms=$((($(date +%s%N) - t0) / 1000000))
    case $rc in
        0) status=ok ;;
        124 | 137) status=TIMEOUT ;;
        *) status="FAILED(rc=$rc)" ;;
    esac
    grep -v -e 'it/s]' -e 'Warning' "$WORK/logs/$name.log" | tail -n 14
    printf '%-13s %-14s %7.1f s  (budget %s s)\n' "$name" "$status" "$((ms / 100))e-1" \
        "$budget" | tee -a "$SUMMARY"
    tar -czf "$OUT/results.tar.gz" -C "$WORK" logs json 2> /dev/null
}
mkdir -p "$WORK/json"

if compgen -G ".whl/*.whl" > /dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .whl/*.whl || echo "wheel install FAILED"
    export PYTHONPATH="/tmp/site:$PWD"
else
    export PYTHONPATH="$PWD"
fi

PREP_PY='
import os, sys, time, torch
from pathlib import Path
import diffusers, transformers
print("torch", torch.__version__, "diffusers", diffusers.__version__,
      "transformers", transformers.__version__)
if torch.cuda.is_available():
    print(torch.cuda.get_device_name(), torch.cuda.get_device_properties(0).total_memory // 2**30, "GiB")
from nulltta.testing import sd15_random_pipeline, tiny_stable_diffusion_pipeline
folder = Path(sys.argv[1])
if not (folder / "model_index.json").exists():
    started = time.perf_counter()
    smoke = os.environ["CPU_SMOKE"] == "1"
    with torch.device("cpu" if smoke else "cuda"):  # random init on the GPU: seconds
        pipe = tiny_stable_diffusion_pipeline() if smoke else sd15_random_pipeline(seed=0)
    pipe.save_pretrained(folder)
    print(f"saved {folder} in {time.perf_counter() - started:.1f} s")
'

# One image with the paper schedule: argv = compile mode ("exact" for none), JSON path.
IMAGE_PY='
import json, os, sys, time, torch
from lightning import Callback
from transformers import CLIPConfig, CLIPModel
from nulltta import NullTextAligner
from nulltta.equations import inner_steps_schedule
from nulltta.rewards.pickscore import PickScore
from nulltta.testing import sd15_random_pipeline, tiny_clip_tokenizer, tiny_stable_diffusion_pipeline
mode, out = sys.argv[1], sys.argv[2]
smoke = os.environ["CPU_SMOKE"] == "1"
steps = int(os.environ["IMAGE_STEPS"])
device = torch.device("cpu" if smoke else "cuda")
sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
tok = tiny_clip_tokenizer(max_length=77)
if smoke:
    vision = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4, patch_size=8, image_size=32)
    text, dim = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=4), 16
else:  # laion/CLIP-ViT-H-14 (PickScore): the reward costs what PickScore costs
    vision = dict(hidden_size=1280, intermediate_size=5120, num_hidden_layers=32, num_attention_heads=16, patch_size=14, image_size=224)
    text, dim = dict(hidden_size=1024, intermediate_size=4096, num_hidden_layers=24, num_attention_heads=16), 1024
text.update(vocab_size=len(tok), max_position_embeddings=77, bos_token_id=0, eos_token_id=1, pad_token_id=1)
started = time.perf_counter()
with device:
    clip = CLIPModel(CLIPConfig(text_config=text, vision_config=vision, projection_dim=dim)).eval()
    pipe = tiny_stable_diffusion_pipeline() if smoke else sd15_random_pipeline(seed=0)
pipe.to(device)
reward = PickScore(model=clip, tokenizer=tok, device=device)
record = {"mode": mode, "device": str(device), "steps": steps, "build_seconds": time.perf_counter() - started}
settings = dict(num_inference_steps=steps, n_min=5, n_max=25, num_candidates=3, seed=0)
compiled = {} if mode == "exact" else {"compile_mode": mode}
prompt = "a painting of a red house with a tree"
def timed(aligner):
    sync(); t = time.perf_counter(); aligner.fit(prompt); sync()
    return time.perf_counter() - t
# Warm-up (CUDA context, cuDNN, allocator): 2 steps; with compile, also the compile of every shape.
record["warmup_2_steps_seconds"] = timed(NullTextAligner(pipe, reward, **{**settings, "num_inference_steps": 2}))
if compiled:
    record["compiled_2_steps_seconds"] = timed(NullTextAligner(pipe, reward, **{**settings, "num_inference_steps": 2}, **compiled))
    record["compile_seconds"] = record["compiled_2_steps_seconds"] - record["warmup_2_steps_seconds"]
    seconds = record["compile_seconds"]
    print(f"compile: {seconds:.1f} s", flush=True)
t0 = None
class Progress(Callback):
    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if int(batch) % 10 == 9:
            sync(); print(f"  step {int(batch) + 1}/{steps}: {time.perf_counter() - t0:.1f} s", flush=True)
aligner = NullTextAligner(pipe, reward, callbacks=[Progress()], **settings, **compiled)
sync(); t0 = time.perf_counter(); aligner.fit(prompt); sync()
record["seconds_per_image"] = time.perf_counter() - t0
record["inner_steps"] = sum(inner_steps_schedule(steps, 5, 25))
record["ms_per_inner_step_of_fit"] = 1e3 * record["seconds_per_image"] / record["inner_steps"]
record["precision"] = {"unet": aligner.module_.adapter.denoiser_autocast, "vae": aligner.module_.adapter.vae_autocast}
record["reward"] = aligner.reward_
if device.type == "cuda":
    record["peak_gib"] = torch.cuda.max_memory_allocated() / 2**30
print(json.dumps(record, indent=1), flush=True)
json.dump(record, open(out, "w"), indent=1)
'

# The measured inner steps against the counted floor (benchmarks/results/flops.json):
# argv = output JSON, then inner_step.py JSON files.
FLOOR_PY='
import json, sys
flops = json.load(open("benchmarks/results/flops.json"))
parts, peak = flops["measured"]["parts"], flops["peak_tflops"]
bf16, tf32 = peak["bf16"] * 1e12, peak["tf32"] * 1e12
unet = {"release": parts["unet_release"]["total"], "cached": parts["unet"]["total"]}
rows = {}
for path in sys.argv[2:]:
    try:
        summary = json.load(open(path))["summary"]
    except (OSError, ValueError, KeyError) as error:
        print(f"{path}: {error}"); continue
    for name, stats in summary.items():
        way = "release" if name.startswith("release") else "cached"
        vae = parts["vae_tiny"]["total"] if "tiny-decoder" in name else parts["vae"]["total"]
        if "bf16" in name:
            floor = (unet[way] + vae) / bf16
        elif "auto" in name:  # fp16 UNet; VAE in float32 on TF32 (the SD family)
            floor = unet[way] / bf16 + vae / tf32
        else:  # float32 on TF32 tensor cores
            floor = (unet[way] + vae) / tf32
        measured = stats["seconds"]
        rows[name] = {"measured_ms": 1e3 * measured, "floor_ms": 1e3 * floor,
                      "fraction_of_floor": floor / measured}
        print(f"{name:28s} measured {1e3 * measured:8.2f} ms  floor {1e3 * floor:6.2f} ms"
              f"  fraction {floor / measured:.3f}")
record = {"peak": flops["peak_name"], "peak_tflops": peak, "rows": rows}
json.dump(record, open(sys.argv[1], "w"), indent=1)
'

part prep 40 $PY -c "$PREP_PY" "$SD"
[ "$SMOKE" = 1 ] || nvidia-smi --query-gpu=name,memory.total,power.limit,driver_version \
    --format=csv | tee -a "$WORK/logs/prep.log"

if [ "$SMOKE" = 1 ]; then
    part a_gpu_tests 35 $PY -m pytest -m gpu tests/core/test_gpu.py -q -p no:cacheprovider
else
    part a_gpu_tests 35 $PY -m pytest -m gpu tests -q -p no:cacheprovider \
        --continue-on-collection-errors
fi

if [ "$SMOKE" = 1 ]; then MAIN_ARGS=(--steps 2 --n-min 1 --n-max 1); else MAIN_ARGS=(); fi
part b_main_job 60 $PY -c 'import sys; from nulltta.cli import main; sys.exit(main())' \
    generate "a red circle on a white background" --device "$DEVICE" "${MAIN_ARGS[@]}" \
    --out "$WORK/main_job" --quiet
cp "$WORK/main_job/history.json" "$WORK/json/main_job_history.json" 2> /dev/null

part e1_image 110 $PY -c "$IMAGE_PY" exact "$WORK/json/image_exact.json"

if [ "$SMOKE" = 1 ]; then
    INNER=(--resolution "$RES" --rounds 1 --repeats 1 --threads 1)
else
    INNER=(--resolution "$RES" --rounds 1 --repeats 5 --threads 4)
fi
part f1_inner 80 $PY benchmarks/inner_step.py --device "$DEVICE" --cache "$SD" "${INNER[@]}" \
    --variants release cached release+auto cached+auto cached+bf16 release+bf16 \
    cached+auto+tiny-decoder --json "$WORK/json/inner_step.json"
part g_floor 15 $PY -c "$FLOOR_PY" "$WORK/json/floor_fraction.json" "$WORK/json/inner_step.json"

if [ "$SMOKE" = 1 ]; then
    part c_throughput 60 $PY benchmarks/throughput.py --device cpu --batch-sizes 1 2 \
        --rounds 1 --steps 2 --out "$WORK/json/throughput"
else
    part c_throughput 60 $PY benchmarks/throughput.py --device cuda --batch-sizes 1 2 4 8 \
        --rounds 1 --steps 10 --out "$WORK/json/throughput"
fi

if [ "$SMOKE" = 1 ]; then
    VS=(--device cpu --model "$SD" --resolution "$RES" --steps 2 --batch-size 1)
else
    VS=(--device cuda --model sd15-random --resolution 512 --steps 10 --batch-size 2)
fi
part d_vs_release 55 $PY benchmarks/vs_release.py "${VS[@]}" --reward brightness \
    --prompts 2 --seeds 0 --json "$WORK/json/vs_release.json"

part e2_compile 100 $PY -c "$IMAGE_PY" reduce-overhead \
    "$WORK/json/image_compiled.json"

part f2_compile 55 $PY benchmarks/inner_step.py --device "$DEVICE" --cache "$SD" "${INNER[@]}" \
    --variants cached+auto+compile-ro --json "$WORK/json/inner_step_compile.json"

part g_floor2 15 $PY -c "$FLOOR_PY" "$WORK/json/floor_fraction.json" \
    "$WORK/json/inner_step.json" "$WORK/json/inner_step_compile.json"

echo "== summary (total $(($(date +%s) - START)) s of ${TOTAL} s)"
cat "$SUMMARY"
echo "total $(($(date +%s) - START)) s" >> "$SUMMARY"
tar -czf "$OUT/results.tar.gz" -C "$WORK" logs json 2> /dev/null
ls -la "$OUT"
