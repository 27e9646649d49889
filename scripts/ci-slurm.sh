#!/usr/bin/env bash
# The slurm tier of CI, start to finish: a one-host Slurm cluster up (installed when missing),
# `-m slurm` tests against it, the cluster down again if this run started it.
#
# Why one script: .ci/run stays a list of tiers, and a developer reproduces the tier exactly
# with `scripts/ci-slurm.sh` (extra arguments go to pytest, e.g. `-k cancel -x`). CI=true makes
# a cluster that cannot start fail the tier instead of skipping it.
#
#   PYTHON   interpreter with the project's dev extra (default .venv/bin/python)
set -euo pipefail

cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-$PWD/.venv/bin/python}"
export CI="${CI:-true}"
t0=$SECONDS
rc=0
scripts/with-slurm.sh "$PYTHON" -m pytest -m slurm tests/slurm "$@" || rc=$?
echo "[ci-slurm] slurm tier: $((SECONDS - t0)) s$( ((rc == 0)) || echo " (FAILED, exit $rc)")" >&2
exit "$rc"
