#!/usr/bin/env bash
# The CUDA path, measured in one sitting on a lent GPU (benchmarks/README.md, "GPU path"):
# the card, bench_train.py (TF32 vs bf16 vs compiled, with both matmul peaks), then the GPT-2-small
# recipe trained for a fixed time on CORPUS (its tokenizer may already be in RUN, from `gpt prepare`).
#
#   bash benchmarks/gpu_check.sh CORPUS RUN [SECONDS]
# Logs go to $OUT (default /tmp/gpu_check). Every stage runs even when an earlier one fails.
set -u -o pipefail
corpus=${1:?corpus folder}; run=${2:?run directory}; seconds=${3:-200}
out=${OUT:-/tmp/gpu_check}; mkdir -p "$out"
export PYTHONPATH=$PWD:${PYTHONPATH:-} PYTHONUNBUFFERED=1
py=${PYTHON:-python3}

nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm,power.limit --format=csv 2>&1 | tee "$out/env.txt"
$py -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name(0))" \
  2>&1 | tee -a "$out/env.txt"

timeout 240 $py benchmarks/bench_train.py --device cuda --presets default gpt2-small --steps 15 --compile \
  2>&1 | tee "$out/bench_train.txt"

# GPT-2 small: 12 x 768, context 1024, 64 x 8 x 1024 = 524,288 tokens per step on one GPU.
timeout $((seconds + 180)) $py -m gpt train --out "$run" --input "$corpus" --preset gpt2 --data.qa off \
  --model.n_layer 12 --model.n_head 12 --model.n_embd 768 --model.block_size 1024 \
  --tokenizer.vocab_size 50304 --train.batch_size 64 --train.grad_accum 8 \
  --train.lr 6e-4 --train.max_iters 20000 --train.eval_interval 100 --train.log_interval 5 \
  --train.max_time "$seconds" 2>&1 | tee "$out/recipe.txt" ||
  echo "gpu_check: the recipe failed (exit $?)" | tee -a "$out/recipe.txt"
cp "$run/metrics.jsonl" "$out/" 2>/dev/null
nvidia-smi --query-gpu=clocks.sm,temperature.gpu,power.draw --format=csv 2>&1 | tee -a "$out/env.txt"
