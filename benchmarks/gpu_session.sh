#!/usr/bin/env bash
# One device call on a lent GPU (see /work/.library/device): the CUDA paths, then a library landscape.
#   1. versions and the GPU;                                  -> $OUT/versions.txt
#   2. gpu_check.py: out-of-memory config and the recovery after it, torchao int8/int4 weight-only on CUDA;
#                                                             -> $OUT/gpu_check.csv, gpu_check.log
#   3. the H200 library landscapes in LANDSCAPES (compiled configs last; a second pass for unstable ones), cut at
#      RECORD_S seconds in all;                               -> $OUT/<landscape>.jsonl, record.log
# GPU_CHECK=0 skips step 2.
# Wheels the image lacks travel in .whl (transformers as pinned here, torchao), fetched here beforehand with
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#     --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64 -d .whl transformers==5.24.0 torchao==0.18.0
# (.whl/ is listed in .git/info/exclude and carried). Usage on the device:
#   LANDSCAPES='envs/recordings/library/A envs/recordings/library/B' bash benchmarks/gpu_session.sh [RECORD_S]
set -u
RECORD_S=${1:-400}
OUT=${OUT:-runs/gpu-session}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    || exit 1
  export PYTHONPATH=/tmp/site:$PWD
else
  export PYTHONPATH=$PWD
fi
LANDSCAPES=${LANDSCAPES:-envs/recordings/library/h200-rand-l8-h1024-chat}
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
  python3 -c "import torch, transformers, torchao; print('torch', torch.__version__, 'transformers', transformers.__version__, 'torchao', torchao.__version__, torch.cuda.get_device_name(0))"
} 2>&1 | tee "$OUT/versions.txt"

if [ "${GPU_CHECK:-1}" = 1 ]; then
  first=${LANDSCAPES%% *}
  timeout 110 python3 benchmarks/gpu_check.py --env "$first.yaml" --dtypes bfloat16 --batches 16 --new-tokens 32 \
    --num-requests 16 --max-measure-s 3 --no-compile --out /tmp/gpu-check 2>&1 | tee "$OUT/gpu_check.log" | grep -v Warning
  cp /tmp/gpu-check/gpu_check.* "$OUT/" 2>/dev/null
fi

# Pass 1 records each landscape in turn (an equal share of what is left each); pass 2 measures again the configs
# that came out unstable (the recorder skips the others). Each landscape's file is copied to $OUT after each step.
deadline=$((SECONDS + RECORD_S))
set -- $LANDSCAPES
for pass in 1 2; do
  remaining=$#
  for landscape in "$@"; do
    left=$((deadline - SECONDS))
    [ "$left" -gt 10 ] || break
    share=$(( pass == 1 ? left / remaining : left ))
    remaining=$((remaining - 1))
    timeout "$share" python3 -m tuner.cli --runs-dir /tmp/runs record "$landscape.yaml" >> "$OUT/record.log" 2>&1
    echo "$landscape pass $pass exit: $?" >> "$OUT/record.log"
    cp "$landscape.jsonl" "$OUT/" 2>/dev/null
  done
done
grep -E "^lib-.*(ok|unstable|failed|infeasible|min of)|exit:" "$OUT/record.log" | tail -40
exit 0
