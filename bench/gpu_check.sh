#!/usr/bin/env bash
# The GPU check: one script, about 8 minutes on one H100/H200, that prints what only a GPU can tell us.
#
#   python bench/gpu_bundle.py        # here, once: the wheels and data a bare GPU machine lacks (bench/gpu_bundle/, ~40 MiB)
#   bash bench/gpu_check.sh           # there: with the repo checked out and bench/gpu_bundle/ beside it
#
# The GPU machine is bare and offline (Python 3.12, torch, tiktoken, pyarrow, matplotlib, pytest): no pip
# index, no papermill, no nbdev. So the package runs from the checkout on PYTHONPATH, the missing wheels are
# unzipped from the bundle, and the speedrun's cells run in plain Python (bench/run_speedrun.py), each stage
# launched by torchrun exactly as papermill would. It prints, in order:
#   1. the machine: GPUs, driver, torch, CUDA, compilers (torch.compile needs a C compiler for Triton)
#   2. the CUDA-path tests (tests/test_cuda.py: bf16, TF32, KV cache, checkpoint GPU -> CPU, NCCL)
#   3. the smoke preset end to end with bf16 + torch.compile, every GPU (NCCL when there are two or more)
#   4. bench/train.py --device cuda at d20: tokens/s, MFU, peak memory at device batch 32 (must fit 80 GB)
#   5. the engine's decode tokens/s on the GPU (d20, bf16, with and without the KV cache)
# Each part has its own time limit and the script goes on after a failure; the last lines sum up.
# GPU_CHECK_QUICK=1 shrinks parts 3-5 (a CPU machine can run the plumbing: tests/test_gpu_check.py does).
set -u
cd "$(dirname "$0")/.."
REPO=$PWD
PY=${PYTHON:-python3}
QUICK=${GPU_CHECK_QUICK:-0}
WORK=$(mktemp -d /tmp/gpu-check.XXXXXX)
SITE=$WORK/site
export NANOCHAT_BASE_DIR=$WORK/base
export TIKTOKEN_CACHE_DIR=$SITE/tiktoken_cache
export PYTHONPATH=$REPO:$SITE${PYTHONPATH:+:$PYTHONPATH}
export PYTHONUNBUFFERED=1
declare -a SUMMARY=()

part() {  # part NAME LIMIT_SECONDS COMMAND...: run one part with its own limit, record how it ended
  local name=$1 limit=$2; shift 2
  echo; echo "=================== $name (limit ${limit}s) ==================="
  local t0=$SECONDS
  timeout --kill-after=10 "$limit" "$@"
  local rc=$?
  local took=$((SECONDS - t0))
  if [ $rc -eq 0 ]; then SUMMARY+=("ok      ${took}s  $name")
  elif [ $rc -eq 124 ] || [ $rc -eq 137 ]; then SUMMARY+=("TIMEOUT ${took}s  $name")
  else SUMMARY+=("FAILED  ${took}s  $name (exit $rc)"); fi
}

if [ ! -d bench/gpu_bundle/wheels ]; then
  echo "error: bench/gpu_bundle/ is missing: run 'python bench/gpu_bundle.py' on a machine with PyPI and cargo, then carry it here"
  exit 2
fi
$PY bench/gpu_bundle.py --out bench/gpu_bundle --unpack "$SITE" || exit 2

echo "=================== the machine ==================="
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || echo "nvidia-smi: not found"
$PY - <<'EOF'
import platform, shutil, torch
print(f"python {platform.python_version()}, torch {torch.__version__}, CUDA {torch.version.cuda}, "
      f"{torch.cuda.device_count()} GPU(s): {[torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]}")
print("C compiler for Triton:", shutil.which("cc") or shutil.which("gcc") or "none (torch.compile on CUDA will fail)")
import rustbpe, fastcore, regex, nanochat.common
print("bundle imports: rustbpe", rustbpe.__file__, "| fastcore", fastcore.__version__)
EOF
NGPU=$($PY -c "import torch; print(torch.cuda.device_count())")

part "CUDA-path tests" 120 $PY -m pytest -p no:cacheprovider -q -ra tests/test_cuda.py

if [ "$QUICK" = 1 ]; then SMOKE_OVERRIDES="" ; else SMOKE_OVERRIDES="dtype=bfloat16,compile=True"; fi
part "smoke speedrun (bf16 + torch.compile, $NGPU GPU(s))" 180 \
  $PY bench/run_speedrun.py preset=smoke run=gpu-smoke "overrides=$SMOKE_OVERRIDES" nproc=0 \
      device_type="$([ "$NGPU" -gt 0 ] && echo cuda || echo cpu)"
[ -f "$NANOCHAT_BASE_DIR/runs/gpu-smoke/report.md" ] && sed -n '1,40p' "$NANOCHAT_BASE_DIR/runs/gpu-smoke/report.md"

if [ "$QUICK" = 1 ]; then
  part "bench/train.py (quick, cpu)" 120 $PY bench/train.py --device cpu --depth 2 --vocab-size 512 --max-seq-len 64 \
    --device-batch-size 2 --total-batch-size 256 --steps 2 --warmup 1 --no-compile
  part "bench/engine.py (quick, cpu)" 60 $PY bench/engine.py --device cpu --depth 2 --vocab-size 512 --contexts 64 \
    --batches 1 --new-tokens 8 --uncached-tokens 2
else
  # d20: 524,288 tokens per step = 8 passes of 32 x 2048 on one GPU; 3 warm-up steps (compilation) then 5 timed
  part "bench/train.py --device cuda, d20, device batch 32" 240 bash -o pipefail -c "$PY bench/train.py --device cuda --depth 20 \
    --device-batch-size 32 --steps 5 --warmup 3 | tee $WORK/train.txt"
  # the d20 preset's device batch must fit an 80 GB card (H100), even when this one is an H200 (141 GB)
  part "d20 at device batch 32 fits 80 GB" 5 $PY -c "
import re, sys; m = re.search(r'peak memory ([\d,]+) MiB', open('$WORK/train.txt').read())
mib = int(m.group(1).replace(',', '')); print(f'peak {mib:,} MiB of 81,920'); sys.exit(mib > 80 * 1024)"
  part "bench/engine.py --device cuda, d20" 60 $PY bench/engine.py --device cuda --depth 20 --vocab-size 65536 \
    --contexts 512,2048 --batches 1,8 --new-tokens 64 --uncached-tokens 8
fi

echo; echo "=================== summary ==================="
printf '%s\n' "${SUMMARY[@]}"
echo "total ${SECONDS}s; work files in $WORK"
for line in "${SUMMARY[@]}"; do case $line in ok*) ;; *) exit 1;; esac; done
