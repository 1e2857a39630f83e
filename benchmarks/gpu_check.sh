#!/usr/bin/env bash
# Device wrapper of gpu_check.py: installs the wheels carried in .whl/ (trl, datasets, evaluate, deepspeed and the
# few packages they need that the device image lacks) into /tmp/site, then runs the check with its JSON and log
# under $OUT. Extra arguments go to gpu_check.py (e.g. --tiny).
#   device tool: run "cd benchmarks && bash gpu_check.sh", carry [".whl"], timeout_s 500 (it took 403 s)
# .whl/ (git-ignored through .git/info/exclude) was filled as /work/.library/device/README.md says, with
#   pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp
#     --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl trl==1.16.0 datasets==5.2.0
#     evaluate==0.4.6 transformers==5.24.0 peft==0.21.2 dill==0.4.1 multiprocess==0.70.19 fsspec==2026.9.0
#     pydantic==2.14.4 pydantic-core==2.50.5 annotated-types==0.8.0 typing-inspection==0.4.5 hjson==3.1.0
# plus deepspeed-0.19.8-py3-none-any.whl (made with `DS_BUILD_OPS=0 pip wheel --no-deps deepspeed==0.19.8`),
# and .whl/hh-single-turn/ = the harmless_*.jsonl.gz files of ../shared/data/hh-single-turn (for the labeling).
# transformers 5.24 replaces the image's 5.17, on which the W2S configs do not construct (benchmarks/RESULTS.md (g)).
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
