#!/usr/bin/env bash
# What issue 25 asks of a CPU machine beyond the tests, on the quickstart (3 seeds, 21 models), each section against
# a reference run of the same recipe with `--jobs 2` (about 6 minutes on 2 cores; made first unless REFERENCE names
# a finished one). Each section prints its wall time and `benchmarks/compare_runs.py`'s verdict.
#
#   ray     --executor ray on a local Ray instance: must give the reference's margins; its wall time against --jobs 2
#   zero3   accelerate launch with accelerate_configs/deepspeed_zero3.yaml, 2 processes x 8 pairs (DS_ACCELERATOR=cpu):
#           the reference's 1 process x 16 pairs: margins within what a thread count moves on one process (about 1e-2
#           on this recipe, RESULTS.md (h)), accuracies identical or within noise
#   bf16    bf16 mixed precision on the CPU (training.trainer_kwargs={bf16: true}): its wall time, and whether every
#           model's accuracy stays within noise of fp32 over the 3 seeds
#
#   bash benchmarks/cpu_check.sh [ray zero3 bf16]      (PYTHON=path/to/python; OUT=folder, default runs/cpu-check)
# About 6 minutes a section on 2 cores (zero3 longer: two processes of one thread each).
set -euo pipefail
cd "$(dirname "$0")/.."
python="${PYTHON:-.venv/bin/python}"
out="${OUT:-runs/cpu-check}"
reference="${REFERENCE:-$out/reference}"
mkdir -p "$out"
sections=("$@")
[ ${#sections[@]} -gt 0 ] || sections=(ray zero3 bf16)

timed() {  # timed NAME COMMAND...: run it, keep its log, print its wall time and peak memory
  local name="$1"
  shift
  /usr/bin/time -f "$name: wall %e s, peak RSS %M KB" "$@" > "$out/$name.log" 2> "$out/$name.time" \
    || { tail -n 20 "$out/$name.time"; exit 1; }
  tail -n 1 "$out/$name.time"
}

if [ ! -f "$reference/metrics.json" ]; then
  timed reference "$python" -m w2s_align run recipes/quickstart.yaml "output_dir=$reference" --jobs 2
fi

for section in "${sections[@]}"; do
  rm -rf "${out:?}/$section"
  case "$section" in
    ray)
      timed ray "$python" -m w2s_align run recipes/quickstart.yaml "output_dir=$out/ray" --executor ray
      ;;
    zero3)
      timed zero3 env DS_ACCELERATOR=cpu OMP_NUM_THREADS=1 "$(dirname "$python")/accelerate" launch \
        --config_file accelerate_configs/deepspeed_zero3.yaml --num_processes 2 \
        -m w2s_align run recipes/quickstart.yaml "output_dir=$out/zero3" training.per_device_train_batch_size=8
      grep -h -o '"distributed_type": "[A-Z_]*"\|"zero_stage": [0-9]' "$out"/zero3/stages/train-*/DONE.json \
        | sort | uniq -c
      ;;
    bf16)
      timed bf16 "$python" -m w2s_align run recipes/quickstart.yaml "output_dir=$out/bf16" \
        "training.trainer_kwargs={bf16: true}" --jobs 2
      ;;
    *)
      echo "unknown section $section (ray, zero3, bf16)" >&2
      exit 2
      ;;
  esac
  "$python" benchmarks/compare_runs.py "$reference" "$out/$section" | tail -n 12
done
