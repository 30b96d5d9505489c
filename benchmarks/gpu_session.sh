#!/usr/bin/env bash
# The GPU session in one script: the compiled path checked and timed on the GPU, then the ten GANs' study
# at full length, measured by the jobs themselves and published. Each part has a time limit and writes one
# file in OUT; a part that fails or runs out of time says so in its file, and the next part still runs.
#
#   bash benchmarks/gpu_session.sh OUT
#
#   device.txt        the GPU, driver, torch and CUDA versions
#   equivalence.txt   benchmarks/compiled_equivalence.py: per GAN, compiled (CUDA graphs) against eager
#   throughput.txt    benchmarks/throughput.py: step / fast / compiled images/s against the baseline
#   study.txt         --plan's estimate, then the study (every GAN, STUDY_SEEDS seeds, STUDY_EPOCHS epochs,
#                     packs of PACK on the one GPU, compile=COMPILE) and its wall time
#   results.tar.gz    the study's report, published (launch.py --publish): what results/ holds
#   figures.json      each study job's epochs, s/epoch and images/s
#
# Sizes (environment): GANS (default: every GAN in REGISTRY), STEPS (timed steps per mode, 100),
# STUDY_EPOCHS (50), STUDY_SEEDS (1), PACK (the number of GANs: one pack), COMPILE (true),
# LIMIT_BATCHES (steps per epoch; default all), STUDY_LIMIT (seconds for the study, 480). PYTHON: the
# interpreter (default python3). What a GPU machine lacks travels in .gpu/ (git-ignored): .gpu/wheels/*.whl
# (pip download --no-deps submitit==1.5.4) and .gpu/data/ (the four Fashion-MNIST IDX files).
set -uo pipefail
out=${1:?usage: bash benchmarks/gpu_session.sh OUT}
mkdir -p "$out"
out=$(cd "$out" && pwd)
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if compgen -G ".gpu/wheels/*.whl" >/dev/null; then
  "$PYTHON" -m pip install -q --no-index --no-deps --target /tmp/gpu-site .gpu/wheels/*.whl
  export PYTHONPATH="/tmp/gpu-site${PYTHONPATH:+:$PYTHONPATH}"
fi
[ -d .gpu/data ] && export FASHION_MNIST_DIR="$PWD/.gpu/data"
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"  # submitit's job processes import jobs/
# The registry names the GANs (one file each in fashion/gans/), so a new one joins unedited.
read -ra registered <<<"$("$PYTHON" -c 'from fashion.gans import REGISTRY; print(*sorted(REGISTRY))')"
GANS=${GANS:-$(IFS=,; echo "${registered[*]}")}
STEPS=${STEPS:-100}
STUDY_EPOCHS=${STUDY_EPOCHS:-50}
STUDY_SEEDS=${STUDY_SEEDS:-1}
PACK=${PACK:-$(tr ',' '\n' <<<"$GANS" | wc -l)}
COMPILE=${COMPILE:-true}
STUDY_LIMIT=${STUDY_LIMIT:-480}
batches=(${LIMIT_BATCHES:+--limit-batches "$LIMIT_BATCHES"})
selection=($(tr ',' ' ' <<<"$GANS" | sed 's#\([a-z_0-9]*\)#gan/\1#g'))

part() {  # part NAME SECONDS COMMAND...: run COMMAND into OUT/NAME.txt, at most SECONDS
  local name=$1 limit=$2 start=$SECONDS
  shift 2
  echo "== $name: $*" | tee -a "$out/$name.txt"
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

part equivalence 150 "$PYTHON" benchmarks/compiled_equivalence.py --gans "$GANS"
part throughput 240 "$PYTHON" benchmarks/throughput.py --gans "$GANS" --steps "$STEPS" --job-steps 0 \
  --modes step,fast,compiled

runs="$out/runs"
study=("${selection[@]}" --seeds "$STUDY_SEEDS" --epochs "$STUDY_EPOCHS" --set "compile=$COMPILE" --pack "$PACK"
       --run gpu-study --outputs "$runs" "${batches[@]}")
part study 60 "$PYTHON" launch.py "${study[@]}" --plan --plan-device "$("$PYTHON" -c 'import torch
print(torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu")')" --slots 1
part study "$STUDY_LIMIT" "$PYTHON" launch.py "${study[@]}" --local --no-aggregate
part study 150 "$PYTHON" launch.py --aggregate gpu-study --outputs "$runs"
part study 60 "$PYTHON" launch.py --publish gpu-study --outputs "$runs" --out "$out/results"
[ -d "$out/results" ] && tar czf "$out/results.tar.gz" -C "$out" results && rm -rf "$out/results"

"$PYTHON" - "$runs" >"$out/figures.json" <<'PY'
import json, sys
from pathlib import Path

rows = {}
for path in sorted(Path(sys.argv[1]).glob("*/*/*/metrics.json")):
    metrics = json.loads(path.read_text())
    rows[f"{path.parts[-4]}/{metrics.get('job')}"] = {k: metrics.get(k) for k in
                                                      ("epochs", "seconds_per_epoch", "images_per_s", "gpu",
                                                       "measure_seconds")}
print(json.dumps(rows, indent=1))
PY
rm -rf "$runs"  # checkpoints and pictures: results.tar.gz and figures.json keep what the figures need
echo "files in $out: $(ls "$out" | tr '\n' ' ')"
