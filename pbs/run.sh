#!/usr/bin/env bash
# The whole pipeline (the stages of conf/run.yaml) on PBS (PBS Pro, OpenPBS, Torque):
# `genre-hpc run` with PBSCluster worker jobs (one driver job submits them).
# Configured and tested without PBS, not run here. PBS Pro and OpenPBS pass no arguments to a job
# script: the Hydra overrides travel in GENRE_HPC_ARGS (qsub -v splits at commas, so put a list
# override such as stages=[a,b] in conf/local/default.yaml); Torque's qsub -F passes arguments:
#   qsub -v GENRE_HPC_ARGS="cluster.jobs=8 cluster.queue=workq data.root=/scratch/gtzan" pbs/run.sh
#   qsub -F "cluster.jobs=8 data.root=/scratch/gtzan" pbs/run.sh      (Torque)
#   bash pbs/run.sh cluster=local                                   (dry run on this machine)
# qsub options resize the driver (qsub -l walltime=08:00:00 ...); Torque sites write
# -l nodes=1:ppn=1,mem=8gb instead of select.
# The header lines size only this driver job (Dask scheduler + client); the workers' resources
# are cluster.* (conf/cluster/pbs.yaml). Python: $GENRE_HPC_PYTHON, else .venv/bin/python in
# the folder the job was submitted from (or this repository), else python3 on PATH.
#PBS -N genre-hpc-run
#PBS -l select=1:ncpus=1:mem=8gb
#PBS -l walltime=04:00:00
#PBS -j oe
set -euo pipefail
# Self-contained on purpose (the three scripts repeat these lines): the scheduler runs a copy
# of this file, so it cannot source a sibling script.

cd "${PBS_O_WORKDIR:-.}"  # the folder the job was submitted from (relative paths)
py="${GENRE_HPC_PYTHON:-}"
for dir in "${PBS_O_WORKDIR:-}" "$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"; do
    [ -z "$py" ] && [ -n "$dir" ] && [ -x "$dir/.venv/bin/python" ] && py="$dir/.venv/bin/python"
done
py="${py:-python3}"
# the overrides: GENRE_HPC_ARGS (split at spaces), then the script's own arguments
read -r -a args <<<"${GENRE_HPC_ARGS:-}"
exec "$py" -m genre_hpc.cli run cluster=pbs "${args[@]}" "$@"
