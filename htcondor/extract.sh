#!/usr/bin/env bash
# Feature extraction on HTCondor:
# `genre-hpc extract` with HTCondorCluster worker jobs (one driver job submits them).
# Configured and tested without HTCondor, not run here. The driver must run where condor_submit
# works: htcondor/extract.sub submits this script as a local-universe job on the access point, with
# the Hydra overrides as its arguments; the workers go to the pool:
#   condor_submit htcondor/extract.sub overrides="cluster.jobs=8 data.root=/scratch/gtzan"
#   bash htcondor/extract.sh cluster=local                              (dry run on this machine)
# htcondor/extract.sub describes this driver job (Dask scheduler + client); the workers' resources
# are cluster.* (conf/cluster/htcondor.yaml). Python: $GENRE_HPC_PYTHON, else .venv/bin/python in
# the folder the job was submitted from (or this repository), else python3 on PATH.
set -euo pipefail
# Self-contained on purpose (the three scripts repeat these lines): the scheduler runs a copy
# of this file, so it cannot source a sibling script.

py="${GENRE_HPC_PYTHON:-}"
for dir in "$PWD" "$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"; do
    [ -z "$py" ] && [ -n "$dir" ] && [ -x "$dir/.venv/bin/python" ] && py="$dir/.venv/bin/python"
done
py="${py:-python3}"
exec "$py" -m genre_hpc.cli extract cluster=htcondor "$@"
