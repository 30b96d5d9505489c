#!/usr/bin/env bash
# The figures README's Speed section quotes for a GPU, measured in one go on one GPU node, each part's output
# kept in OUT. Each part has a time limit; together they come to 9.5 minutes.
#
#   bash benchmarks/gpu_figures.sh OUT
#
#   device.txt      the GPU, driver, torch and CUDA versions
#   throughput.txt  benchmarks/throughput.py: baseline / step / fast / loop images/s (fp32; then gan in bf16)
#   epoch.txt       one whole gan/gan epoch through `launch.py --local` on the real data, pictures included
#   pack.txt        every GAN side by side on the one GPU (one pack of them all) for PACK_EPOCHS epochs: its
#                   last line is the pack's wall time, which --plan's range for packs brackets
#   figures.json    each job's s/epoch and images/s from those runs (their metrics.json)
#
# Sizes (environment): GANS (throughput's --gans, default every GAN in REGISTRY), STEPS (timed steps per
# mode, 150), PACK_EPOCHS (3), LIMIT_BATCHES (steps per epoch of the two runs; default all: whole epochs).
# PYTHON: the interpreter (default python3, a name every Python 3 install has). Data:
# $FASHION_MNIST_DIR or the usual places (fashion/data.py). The project imports from this checkout, installed
# or not. A part that fails or outlasts its share is noted in its file, and the next part still runs.
set -uo pipefail
out=${1:?usage: bash benchmarks/gpu_figures.sh OUT}
mkdir -p "$out"
out=$(cd "$out" && pwd)
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"  # submitit's job processes import jobs/
PYTHON=${PYTHON:-python3}
# The registry names the GANs (one file each in fashion/gans/), so a new one joins the figures unedited.
read -ra registered <<<"$("$PYTHON" -c 'from fashion.gans import REGISTRY; print(*sorted(REGISTRY))')"
GANS=${GANS:-$(IFS=,; echo "${registered[*]}")}
STEPS=${STEPS:-150}
PACK_EPOCHS=${PACK_EPOCHS:-3}
batches=(${LIMIT_BATCHES:+--limit-batches "$LIMIT_BATCHES"})

part() {  # part NAME SECONDS COMMAND...: run COMMAND into OUT/NAME.txt, at most SECONDS
  local name=$1 limit=$2 start=$SECONDS
  shift 2
  echo "== $name: $*" | tee "$out/$name.txt"
  timeout "$limit" "$@" >>"$out/$name.txt" 2>&1
  local code=$?
  echo "== $name: exit $code after $((SECONDS - start)) s$([ $code = 124 ] && echo " (stopped at its $limit s limit)")" \
    | tee -a "$out/$name.txt"
}

part device 60 "$PYTHON" -c "
import platform, torch
print('torch', torch.__version__, 'cuda', torch.version.cuda, 'python', platform.python_version())
print('gpu', torch.cuda.get_device_name() if torch.cuda.is_available() else 'none (CPU only)')"
! command -v nvidia-smi >/dev/null || nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv >>"$out/device.txt"

part throughput 270 "$PYTHON" benchmarks/throughput.py --gans "$GANS" --steps "$STEPS" --job-steps 0
part throughput-bf16 60 "$PYTHON" benchmarks/throughput.py --gans gan --steps "$STEPS" --job-steps 0 \
  --precision bf16
cat "$out/throughput-bf16.txt" >>"$out/throughput.txt" && rm "$out/throughput-bf16.txt"

runs="$out/runs"
part epoch 60 "$PYTHON" launch.py gan/gan --local --epochs 1 --no-aggregate --outputs "$runs" --run epoch \
  "${batches[@]}"
part pack 150 "$PYTHON" launch.py 'gan/*' --local --pack "${#registered[@]}" --epochs "$PACK_EPOCHS" --no-aggregate \
  --outputs "$runs" --run pack "${batches[@]}"

"$PYTHON" - "$runs" >"$out/figures.json" <<'EOF'
import json, sys
from pathlib import Path

rows = {}
for path in sorted(Path(sys.argv[1]).glob("*/*/*/metrics.json")):
    metrics = json.loads(path.read_text())
    rows[f"{path.parts[-4]}/{metrics.get('job')}"] = {k: metrics.get(k) for k in
                                                      ("epochs", "seconds_per_epoch", "images_per_s", "gpu")}
print(json.dumps(rows, indent=1))
EOF
rm -rf "$runs"  # checkpoints and pictures: figures.json keeps what the figures need
echo "figures in $out: $(ls "$out" | tr '\n' ' ')"
