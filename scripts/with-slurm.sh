#!/usr/bin/env bash
# Run a command with the test Slurm cluster up: start it (scripts/slurm-up.sh) unless it already
# answers, export SLURM_CONF, run the command, and stop the cluster afterwards (also when the
# command fails) if this script started it.
#
#   scripts/with-slurm.sh .venv/bin/python -m pytest -m slurm tests/slurm
#
# Why a wrapper: the slurm tier and the docker tier's Slurm test both need the cluster, and a
# developer's own cluster (started earlier with slurm-up.sh) must outlive them.
set -euo pipefail

cd "$(dirname "$0")/.."

DIR="${ARCJOBS_SLURM_DIR:-${TMPDIR:-/tmp}/arcjobs-slurm-$(id -u)}"

if [[ -f "$DIR/slurm.conf" ]] && SLURM_CONF="$DIR/slurm.conf" timeout 10 sinfo >/dev/null 2>&1; then
    echo "[with-slurm] the cluster in $DIR is up; leaving it up afterwards" >&2
else
    trap 'scripts/slurm-down.sh' EXIT
fi
exports=$(scripts/slurm-up.sh)
eval "$exports"
"$@"
