#!/usr/bin/env bash
# Device wrapper of gpu_check.py: installs the wheels carried in .whl/ (trl, datasets, evaluate, deepspeed and the
# few packages they need that the device image lacks) into /tmp/site, then runs the check with its JSON and log
# under $OUT. Extra arguments go to gpu_check.py (e.g. --tiny).
#   device tool: run "cd benchmarks && bash gpu_check.sh", carry [".whl"], timeout_s about 480
# The wheels are made here as /work/.library/device/README.md says (pip download --no-deps --only-binary=:all:
# --python-version 3.12 ...); .whl/hh-single-turn/ holds a copy of ../shared/data/hh-single-turn for the labeling.
set -uo pipefail
cd "$(dirname "$0")/.."
export OUT="${OUT:-/tmp/gpu-check-out}"
mkdir -p "$OUT"
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    || { echo "gpu_check.sh: wheel install failed"; exit 1; }
  export PYTHONPATH="/tmp/site:$PWD${PYTHONPATH:+:$PYTHONPATH}"
else
  export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
python3 -m pip list 2>/dev/null | grep -iE '^(torch|transformers|trl|datasets|evaluate|accelerate|peft|deepspeed|pyarrow|pandas|numpy|huggingface.hub|tokenizers|fsspec|pydantic|dill|multiprocess|typing.extensions) ' \
  > "$OUT/pip_list.txt" || true
cd benchmarks && python3 gpu_check.py "$@" 2>&1 | tee "$OUT/gpu_check.log"
