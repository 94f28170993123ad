#!/usr/bin/env bash
# The whole pipeline on SLURM: `genre-hpc run` (extract, train, tune, evaluate) on one SLURMCluster.
#   sbatch slurm/run.sh [Hydra overrides...]     e.g. cluster.jobs=8 cluster.queue=compute data.root=/scratch/gtzan
#   sbatch -N 2 --ntasks-per-node=2 slurm/run.sh cluster=slurm_runner   (all in one allocation)
#   bash slurm/run.sh cluster=local                (dry run on this machine, no SLURM)
# The #SBATCH lines size only this driver job (Dask scheduler + client); the workers' resources are
# cluster.* (conf/cluster/slurm.yaml). Python: $GENRE_HPC_PYTHON, else .venv/bin/python in the
# directory sbatch was run from (or this repository), else python3 on PATH.
#SBATCH --job-name=genre-hpc-run
#SBATCH --nodes=1
#SBATCH --cpus-per-task=1
#SBATCH --mem=8G
#SBATCH --time=04:00:00
#SBATCH --output=%x-%j.out
set -euo pipefail
# Self-contained on purpose (the three scripts repeat these lines): sbatch runs a spool copy of
# this file, so it cannot source a sibling script.

py="${GENRE_HPC_PYTHON:-}"
for dir in "${SLURM_SUBMIT_DIR:-}" "$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"; do
    [ -z "$py" ] && [ -n "$dir" ] && [ -x "$dir/.venv/bin/python" ] && py="$dir/.venv/bin/python"
done
py="${py:-python3}"
# SLURMRunner mode needs every task of the allocation to run the command; else one driver process.
launch=()
[[ " $* " == *" cluster=slurm_runner "* ]] && launch=(srun --kill-on-bad-exit=1)
exec "${launch[@]}" "$py" -m genre_hpc.cli run cluster=slurm "$@"
