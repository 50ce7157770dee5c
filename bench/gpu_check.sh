#!/usr/bin/env bash
# The GPU check, in one call on a machine with one NVIDIA GPU (about 8 minutes on an H100/H200):
#   1. the CUDA tests (bf16 forward vs fp32, attention kernels per call kind, fp32 modules under FSDP2)
#   2. a few bf16 FSDP2 training steps of the Wan2.1-1.3B flavour at 81x480x832, random weights:
#      step time, tokens/s, MFU against the dense bf16 peak (PEAK_TFLOPS, H100 SXM / H200: 989)
#   3. PACA vs plain cross-attention at the real shape (fair baseline: plain attention over the real
#      text tokens, padding trimmed) and the MFU of one 1.3B block
#   4. sampling one 81-frame 480x832 window with a 1.3B-size random DiT (tiny encoders: DiT time only)
# Usage:  bash bench/gpu_check.sh [OUT]             (writes OUT/*.txt, default gpu-check-out; prints a summary)
#         PEAK_TFLOPS=989 STEPS=5 bash bench/gpu_check.sh
#         CPU_DRY_RUN=1 bash bench/gpu_check.sh OUT   (every step on CPU at toy size: checks the script itself)
# Random weights: the numbers measure speed, never quality.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
OUT=${1:-gpu-check-out}
PEAK=${PEAK_TFLOPS:-989}
STEPS=${STEPS:-5}
if [ "${CPU_DRY_RUN:-0}" = 1 ]; then
  FLAVOR=debug; FRAMES=9; H=64; W=64; SECONDS_=0.36; DEVICE=cpu; DTYPE=float32; PACA=(--device cpu --skip-debug --repeats 1 --threads 1)
else
  FLAVOR=wan2.1-t2v-1.3b; FRAMES=81; H=480; W=832; SECONDS_=3.24; DEVICE=cuda; DTYPE=bfloat16; PACA=(--device cuda --peak-tflops "$PEAK")
  if ! $PY -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)'; then
    mkdir -p "$OUT"; echo "gpu_check: no CUDA device visible to $PY; nothing measured (CPU_DRY_RUN=1 checks the script)" | tee "$OUT/summary.txt"
    exit 2
  fi
fi
mkdir -p "$OUT"
: > "$OUT/summary.txt"
(nvidia-smi || true) > "$OUT/nvidia-smi.txt" 2>&1
$PY -c 'import torch, transformers, diffusers; print("torch", torch.__version__, "| transformers", transformers.__version__, "| diffusers", diffusers.__version__, "|", torch.cuda.get_device_name() if torch.cuda.is_available() else "CPU")' > "$OUT/versions.txt" 2>&1
status=0
step() {  # step NAME TIMEOUT_S COMMAND...: run it, keep its output, note the outcome and go on
  local name=$1 limit=$2; shift 2
  echo "== $name" >&2
  local t0=$SECONDS
  timeout "$limit" "$@" > "$OUT/$name.txt" 2>&1
  local rc=$?
  echo "$name: rc=$rc in $((SECONDS - t0)) s" >> "$OUT/summary.txt"
  [ $rc -eq 0 ] || status=1
}
step cuda_tests 240 $PY -m pytest -q -p no:cacheprovider tests/model/test_dit.py tests/model/test_attention.py tests/train/test_fp32_units.py
step fsdp_train 300 $PY -m torch.distributed.run --nproc-per-node 1 bench/bench_fsdp_step.py --flavor "$FLAVOR" \
  --frames "$FRAMES" --height "$H" --width "$W" --steps "$STEPS" --peak-tflops "$PEAK"
step paca_attention 240 $PY bench/bench_paca_attention.py "${PACA[@]}"
step sample_setup 120 bash -c "$PY -m actavatar.cli models tiny --out '$OUT/tiny' --only vae,umt5,wav2vec2 && \
  $PY bench/sample_check_setup.py '$OUT/check' --flavor $FLAVOR --encoders '$OUT/tiny' --width $W --height $H --seconds $SECONDS_"
step sample_window 300 $PY -c "import sys, time, runpy; t = time.perf_counter(); sys.argv = sys.argv[1:]
try:
    runpy.run_module('evaluation.sample_cli', run_name='__main__')
finally:
    print(f'sample wall {time.perf_counter() - t:.1f} s')" sample --checkpoint "$OUT/check/dit" --encoders "$OUT/tiny" \
  --image "$OUT/check/ref.png" --audio "$OUT/check/speech.wav" --prompt "A person talks. | 0-1.6: waves | 1.6-3.2: nods" \
  --out "$OUT/sample" --no-progress "device=$DEVICE" "dtype=$DTYPE" "width=$W" "height=$H" sampler.steps=10 sampler.solver=euler
echo "--- $(date -u +%F) $(cat "$OUT/versions.txt")"
cat "$OUT/summary.txt"
grep -h "tokens/s\|MFU\|^| " "$OUT/fsdp_train.txt" "$OUT/paca_attention.txt" 2>/dev/null
grep -h "passed\|failed" "$OUT/cuda_tests.txt" 2>/dev/null | tail -1
grep -h "sample wall" "$OUT/sample_window.txt" 2>/dev/null
exit $status
