#!/usr/bin/env bash
# Run a w2s_align recipe with DeepSpeed ZeRO-3 on 2 nodes x 8 GPUs under Slurm.
#
#   sbatch examples/slurm_multinode.sh recipes/deception/gpt2_deception_sweep.yaml [KEY=VALUE ...]
#
# The run directory (output_dir in the recipe) must be on a filesystem every node sees: all processes read the
# cached stages there, and the main process (node 0, GPU 0) writes them.
#SBATCH --job-name=w2s-align
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=1          # one launcher per node; accelerate starts the 8 GPU processes
#SBATCH --gpus-per-node=8
#SBATCH --cpus-per-task=64
#SBATCH --time=24:00:00
#SBATCH --output=%x-%j.out
set -euo pipefail

recipe="${1:?usage: sbatch examples/slurm_multinode.sh RECIPE [KEY=VALUE ...]}"
shift
main_ip=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)
gpus_per_node=8

# srun starts the same command on every node; SLURM_PROCID is that node's rank.
srun bash -c "accelerate launch \
  --config_file accelerate_configs/multi_node_zero3.yaml \
  --num_machines $SLURM_NNODES \
  --num_processes $((SLURM_NNODES * gpus_per_node)) \
  --machine_rank \$SLURM_PROCID \
  --main_process_ip $main_ip \
  --main_process_port 29500 \
  -m w2s_align run $recipe $*"
