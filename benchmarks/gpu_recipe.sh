#!/usr/bin/env bash
# The GPT-2-small recipe trained for a fixed time on one GPU, for longer than one device-tool call may last
# (benchmarks/README.md, "GPU path"). The corpus is the machine's own Python code (the standard library,
# torch and transformers: 101 MB on the lent H100), so that a 10-minute run makes about eleven passes over it
# rather than the eighty it would make over the standard library alone.
#
#   bash benchmarks/gpu_recipe.sh start RUN SECONDS [FOLLOW]   # peaks, then the run in its own session
#   bash benchmarks/gpu_recipe.sh finish RUN [WAIT]             # waits for the run's end, samples it once
#
# `start` measures both matmul peaks on the idle card, starts `gpt train` under setsid (so it outlives the
# call) and follows it for FOLLOW seconds; `finish` waits up to WAIT seconds for it. Both copy the logs to $OUT.
set -u -o pipefail
verb=${1:?start or finish}; run=${2:?run directory}
out=${OUT:-/tmp/gpu_recipe}; mkdir -p "$out"
export PYTHONPATH=$PWD:${PYTHONPATH:-} PYTHONUNBUFFERED=1
py=${PYTHON:-python3}
log=$run.log

collect() { cp "$log" "$out/recipe.txt"; cp "$run/log.jsonl" "$out/" 2>/dev/null; cp /tmp/gpu_recipe_smi.csv "$out/smi.csv" 2>/dev/null; }
running() { pgrep -f "gpt train --out $run" > /dev/null; }

if [ "$verb" = start ]; then
  seconds=${3:?seconds}; follow=${4:-540}; begin=$SECONDS
  corpus=$run.corpus; rm -rf "$corpus" "$run"; mkdir -p "$corpus"
  for package in torch transformers; do
    $py -c "import importlib.util as u; print(u.find_spec('$package').submodule_search_locations[0])"
  done | { cat; $py -c "import sysconfig; print(sysconfig.get_paths()['stdlib'])"; } | while read -r dir; do
    (cd "$(dirname "$dir")" && find "$(basename "$dir")" -name '*.py' -print0 | xargs -0 cp --parents -t "$corpus")
  done
  echo "corpus: $(du -sh "$corpus" | cut -f1) of .py in $(ls "$corpus" | tr '\n' ' ')" | tee "$out/env.txt"
  nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm,power.limit --format=csv 2>&1 | tee -a "$out/env.txt"
  $py - <<'EOF' 2>&1 | tee -a "$out/env.txt"
import sys, torch
sys.path.insert(0, "benchmarks")
from bench_train import matmul_peak
torch.backends.cuda.matmul.allow_tf32 = True
device = torch.device("cuda")
print("torch", torch.__version__, "cuda", torch.version.cuda, torch.cuda.get_device_name(0))
print(f"peaks (8192^3): TF32 {matmul_peak(torch.float32, device) / 1e12:.0f} TFLOP/s, "
      f"bf16 {matmul_peak(torch.bfloat16, device) / 1e12:.0f} TFLOP/s")
EOF
  setsid nohup nvidia-smi --query-gpu=timestamp,utilization.gpu,power.draw,clocks.sm,memory.used \
    --format=csv -l 20 > /tmp/gpu_recipe_smi.csv 2>&1 < /dev/null &
  # GPT-2 small: 12 x 768, context 1024, 16 x 32 x 1024 = 524,288 tokens per step on one GPU.
  setsid nohup $py -m gpt train --out "$run" --input "$corpus" --preset gpt2 --data.qa off \
    --model.n_layer 12 --model.n_head 12 --model.n_embd 768 --model.block_size 1024 \
    --tokenizer.vocab_size 50304 --train.batch_size 16 --train.grad_accum 32 \
    --train.lr 6e-4 --train.max_iters 20000 --train.eval_interval 100 --train.log_interval 5 \
    --train.max_time "$seconds" > "$log" 2>&1 < /dev/null &
  sleep 5
  while running && [ $((SECONDS - begin)) -lt "$follow" ]; do sleep 5; done
  tail -4 "$log"; collect
elif [ "$verb" = finish ]; then
  wait_for=${3:-240}; begin=$SECONDS
  while running && [ $((SECONDS - begin)) -lt "$wait_for" ]; do sleep 3; done
  running && echo "gpu_recipe: the run is still going after ${wait_for}s"
  tail -8 "$log"; collect
  pkill -f "nvidia-smi --query-gpu=timestamp"
  # One greedy sample from the trained model, timed end to end (load, prefill, 200 tokens).
  { time $py -m gpt generate --out "$run" --temperature 0 --max-new-tokens 200 "def fibonacci(n):"; } \
    2>&1 | tee "$out/sample.txt"
else
  echo "gpu_recipe: start or finish, not $verb" >&2; exit 2
fi
