#!/usr/bin/env bash
# One device call on a lent GPU (see /work/.library/device): the CUDA paths, then a library landscape.
#   1. versions and the GPU;                                  -> $OUT/versions.txt
#   2. gpu_check.py: out-of-memory config and the recovery after it, torchao int8/int4 weight-only on CUDA;
#                                                             -> $OUT/gpu_check.csv, gpu_check.log
#   3. the H200 library landscape (compiled configs last; a second pass for unstable ones), cut at RECORD_S seconds;
#                                                             -> $OUT/<landscape>.jsonl, record.log
# Wheels the image lacks travel in .whl (transformers as pinned here, torchao), fetched here beforehand with
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#     --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64 -d .whl transformers==5.24.0 torchao==0.18.0
# (.whl/ is listed in .git/info/exclude and carried). Usage on the device:
#   bash benchmarks/gpu_session.sh [RECORD_S]
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
LANDSCAPE=${LANDSCAPE:-envs/recordings/library/h200-rand-l8-h1024-chat}
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
  python3 -c "import torch, transformers, torchao; print('torch', torch.__version__, 'transformers', transformers.__version__, 'torchao', torchao.__version__, torch.cuda.get_device_name(0))"
} 2>&1 | tee "$OUT/versions.txt"

timeout 110 python3 benchmarks/gpu_check.py --env "$LANDSCAPE.yaml" --dtypes bfloat16 --batches 16 --new-tokens 32 \
  --num-requests 16 --max-measure-s 3 --no-compile --out /tmp/gpu-check 2>&1 | tee "$OUT/gpu_check.log" | grep -v Warning
cp /tmp/gpu-check/gpu_check.* "$OUT/" 2>/dev/null

# A second pass measures again the configs that came out unstable (the recorder skips the others).
timeout "$RECORD_S" bash -c "for pass in 1 2; do python3 -m tuner.library.record $LANDSCAPE.yaml --runs-dir /tmp/runs; done" \
  > "$OUT/record.log" 2>&1
echo "record exit: $?" >> "$OUT/record.log"
grep -E "^lib-|record exit|min of measurement" "$OUT/record.log"
cp "$LANDSCAPE.jsonl" "$OUT/" 2>/dev/null
exit 0
