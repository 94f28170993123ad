#!/usr/bin/env bash
# Feature extraction on OAR:
# `genre-hpc extract` with OARCluster worker jobs (one driver job submits them).
# Configured and tested without OAR, not run here. oarsub -S reads the #OAR lines and runs the
# command with its arguments (the script must be executable):
#   oarsub -S "./oar/extract.sh cluster.jobs=8 cluster.queue=default data.root=/scratch/gtzan"
#   bash oar/extract.sh cluster=local                                   (dry run on this machine)
# oarsub options resize the driver (oarsub -l /nodes=1/core=1,walltime=8:00:00 -S ...).
# The header lines size only this driver job (Dask scheduler + client); the workers' resources
# are cluster.* (conf/cluster/oar.yaml). Python: $GENRE_HPC_PYTHON, else .venv/bin/python in
# the folder the job was submitted from (or this repository), else python3 on PATH.
#OAR -n genre-hpc-extract
#OAR -l /nodes=1/core=1,walltime=4:00:00
#OAR -O genre-hpc-extract.%jobid%.out
#OAR -E genre-hpc-extract.%jobid%.err
set -euo pipefail
# Self-contained on purpose (the three scripts repeat these lines): the scheduler runs a copy
# of this file, so it cannot source a sibling script.

cd "${OAR_WORKDIR:-.}"  # the folder the job was submitted from (relative paths)
py="${GENRE_HPC_PYTHON:-}"
for dir in "${OAR_WORKDIR:-}" "$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"; do
    [ -z "$py" ] && [ -n "$dir" ] && [ -x "$dir/.venv/bin/python" ] && py="$dir/.venv/bin/python"
done
py="${py:-python3}"
exec "$py" -m genre_hpc.cli extract cluster=oar "$@"
