#!/usr/bin/env bash
# The CUDA path, measured in one sitting on a lent GPU (benchmarks/README.md, "GPU path"): the card;
# bench_train.py at GPT-2 small's shape (TF32 vs bf16 vs compiled, both matmul peaks; the chunked loss
# compiled into the graph or run eagerly; a micro-batch whose logits pass 2**31 elements); then the
# GPT-2-small recipe trained for a fixed time on CORPUS (its tokenizer may already be in RUN, from `gpt prepare`).
#
#   bash benchmarks/gpu_check.sh CORPUS RUN [SECONDS]
# Logs go to $OUT (default /tmp/gpu_check). Every stage runs even when an earlier one fails.
set -u -o pipefail
corpus=${1:?corpus folder}; run=${2:?run directory}; seconds=${3:-200}
out=${OUT:-/tmp/gpu_check}; mkdir -p "$out"
export PYTHONPATH=$PWD:${PYTHONPATH:-} PYTHONUNBUFFERED=1
py=${PYTHON:-python3}
bench() { timeout "$1" $py benchmarks/bench_train.py --device cuda --presets gpt2-small --steps 10 --compile "${@:2}"; }

nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm,power.limit --format=csv 2>&1 | tee "$out/env.txt"
$py -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name(0))" \
  2>&1 | tee -a "$out/env.txt"

{ echo "== micro-batch 16, the loss in the graph"; bench 120
  echo "== micro-batch 16, the loss eager"; bench 120 --loss-in-graph never
  echo "== micro-batch 40, 2.06e9 logits: the loss in the graph"; bench 120 --set train.batch_size=40
  echo "== micro-batch 48, 2.47e9 logits: the loss eager (auto)"; bench 120 --set train.batch_size=48
} 2>&1 | tee "$out/bench_train.txt"

# GPT-2 small: 12 x 768, context 1024, 16 x 32 x 1024 = 524,288 tokens per step on one GPU.
timeout $((seconds + 180)) $py -m gpt train --out "$run" --input "$corpus" --preset gpt2 --data.qa off \
  --model.n_layer 12 --model.n_head 12 --model.n_embd 768 --model.block_size 1024 \
  --tokenizer.vocab_size 50304 --train.batch_size 16 --train.grad_accum 32 \
  --train.lr 6e-4 --train.max_iters 20000 --train.eval_interval 100 --train.log_interval 5 \
  --train.max_time "$seconds" 2>&1 | tee "$out/recipe.txt" ||
  echo "gpu_check: the recipe failed (exit $?)" | tee -a "$out/recipe.txt"
cp "$run/log.jsonl" "$out/" 2>/dev/null

# Last, as it may leave the card in an error state: the same 48-row batch with the loss forced into the graph.
{ echo "== micro-batch 48: the loss in the graph (forced)"; bench 120 --set train.batch_size=48 --loss-in-graph always
} 2>&1 | tail -5 | tee "$out/forced.txt"
nvidia-smi --query-gpu=clocks.sm,temperature.gpu,power.draw --format=csv 2>&1 | tee -a "$out/env.txt"
