#!/usr/bin/env bash
# Feature extraction on IBM Spectrum LSF:
# `genre-hpc extract` with LSFCluster worker jobs (one driver job submits them).
# Configured and tested without LSF, not run here. bsub reads the #BSUB lines from a script on its
# standard input, which takes no arguments: the Hydra overrides travel in GENRE_HPC_ARGS, which bsub
# passes on with the rest of the environment:
#   GENRE_HPC_ARGS="cluster.jobs=8 cluster.queue=normal data.root=/scratch/gtzan" bsub < lsf/extract.sh
#   bash lsf/extract.sh cluster=local                                   (dry run on this machine)
# bsub options resize the driver (bsub -W 08:00 < lsf/extract.sh).
# The header lines size only this driver job (Dask scheduler + client); the workers' resources
# are cluster.* (conf/cluster/lsf.yaml). Python: $GENRE_HPC_PYTHON, else .venv/bin/python in
# the folder the job was submitted from (or this repository), else python3 on PATH.
#BSUB -J genre-hpc-extract
#BSUB -n 1
#BSUB -M 4GB
#BSUB -R "span[hosts=1] rusage[mem=4GB]"
#BSUB -W 04:00
#BSUB -o genre-hpc-extract.%J.out
set -euo pipefail
# Self-contained on purpose (the three scripts repeat these lines): the scheduler runs a copy
# of this file, so it cannot source a sibling script.

cd "${LS_SUBCWD:-.}"  # the folder the job was submitted from (relative paths)
py="${GENRE_HPC_PYTHON:-}"
for dir in "${LS_SUBCWD:-}" "$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"; do
    [ -z "$py" ] && [ -n "$dir" ] && [ -x "$dir/.venv/bin/python" ] && py="$dir/.venv/bin/python"
done
py="${py:-python3}"
# the overrides: GENRE_HPC_ARGS (split at spaces), then the script's own arguments
read -r -a args <<<"${GENRE_HPC_ARGS:-}"
exec "$py" -m genre_hpc.cli extract cluster=lsf "${args[@]}" "$@"
