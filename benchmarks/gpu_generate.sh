#!/usr/bin/env bash
# Generation on a lent GPU, in one sitting (benchmarks/README.md, "GPU path"): bench_generate.py at batch 1 for
# the cpu preset, the design default and GPT-2 small's shape (eager fp32, bf16 autocast, the decode step in fp32
# and bf16 weights, the compiled decode step); then the out-of-the-box run trained on the GPU and asked,
# with where a short `gpt generate` spends its time (cProfile, cumulative).
#
#   bash benchmarks/gpu_generate.sh [TOKENS]
# Logs go to $OUT (default /tmp/gpu_generate). Every stage runs even when an earlier one fails.
set -u -o pipefail
tokens=${1:-300}
out=${OUT:-/tmp/gpu_generate}; mkdir -p "$out"
export PYTHONPATH=$PWD:${PYTHONPATH:-} PYTHONUNBUFFERED=1
py=${PYTHON:-python3}
bench() { timeout "$1" $py benchmarks/bench_generate.py --device cuda --presets cpu default gpt2 \
  --new-tokens "$tokens" "${@:2}"; }

nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm,power.limit --format=csv 2>&1 | tee "$out/env.txt"
$py -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name(0))" \
  2>&1 | tee -a "$out/env.txt"

{ echo "== eager"; bench 200 --reps 2 --variants old-fp32 old-bf16 new-fp32 new-bf16w
  echo "== compiled decode step (as gpt serve --compile)"; bench 150 --reps 1 --variants old-fp32 new-compile
} 2>&1 | tee "$out/generate.txt"

run=/tmp/gpu_generate_run
{ echo "== gpt train (out of the box, 45 s)"
  timeout 110 $py -m gpt train --out "$run" --train.max_time 45 2>&1 | tail -6
  echo "== gpt ask, whole command"
  { time timeout 40 $py -m gpt ask --out "$run" "What is a decorator?"; } 2>&1 | tail -8
  echo "== gpt generate, 200 tokens, whole command, cProfile by cumulative time"
  timeout 60 $py -m cProfile -s cumtime -m gpt generate --out "$run" --temperature 0 --max-new-tokens 200 \
    "def fibonacci(n):" 2>&1 | head -60
} 2>&1 | tee "$out/ask.txt"
