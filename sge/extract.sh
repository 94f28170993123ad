#!/usr/bin/env bash
# Feature extraction on Grid Engine: `genre-hpc extract` with SGECluster worker jobs (one driver job submits them).
#   qsub sge/extract.sh [Hydra overrides...]     e.g. cluster.jobs=8 cluster.queue=all.q data.root=/scratch/gtzan
#   bash sge/extract.sh cluster=local           (dry run on this machine, no Grid Engine)
# The #$ lines size only this driver job (Dask scheduler + client); qsub options resize it
# (`qsub -l h_rt=08:00:00 sge/extract.sh ...`). The workers' resources are cluster.* (conf/cluster/sge.yaml).
# Grid Engine runs a job script with the queue's shell and ignores its #! line: -S asks for bash.
# -notify: qdel sends SIGUSR2 before SIGKILL, so the driver can still delete its worker jobs.
# Python: $GENRE_HPC_PYTHON (qsub passes no environment: `qsub -v GENRE_HPC_PYTHON=...`), else
# .venv/bin/python in the directory qsub was run from (or this repository), else python3 on PATH.
#$ -N genre-hpc-extract
#$ -S /bin/bash
#$ -cwd
#$ -j y
#$ -notify
#$ -l h_rt=04:00:00
set -euo pipefail
# Self-contained on purpose (the three scripts repeat these lines): qsub runs a spool copy of
# this file, so it cannot source a sibling script.

py="${GENRE_HPC_PYTHON:-}"
for dir in "${SGE_O_WORKDIR:-}" "$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"; do
    [ -z "$py" ] && [ -n "$dir" ] && [ -x "$dir/.venv/bin/python" ] && py="$dir/.venv/bin/python"
done
py="${py:-python3}"
exec "$py" -m genre_hpc.cli extract cluster=sge "$@"
