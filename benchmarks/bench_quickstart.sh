#!/usr/bin/env bash
# Wall time and peak memory of the quickstart from scratch, then of a rerun of the finished recipe.
#   bash benchmarks/bench_quickstart.sh            (PYTHON=path/to/python to pick the interpreter)
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-runs/bench-quickstart}"
rm -rf "$out"
for attempt in first rerun; do
  /usr/bin/time -f "$attempt: wall %e s, peak RSS %M KB" "${PYTHON:-python}" -m w2s_align run \
    recipes/quickstart.yaml "output_dir=$out" \
    > "$out.$attempt.log" 2> "$out.$attempt.time" || { cat "$out.$attempt.time"; exit 1; }
  tail -n 1 "$out.$attempt.time"
done
