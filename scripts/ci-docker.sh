#!/usr/bin/env bash
# The docker tier of CI, start to finish: engine up, base image, sandbox image, `-m docker`
# tests (with the test Slurm cluster up, scripts/with-slurm.sh), engine down (by its pid, also
# when a step fails, if this run started it).
#
# Why one script: .ci/run stays a list of tiers, and a developer reproduces the tier exactly
# with `scripts/ci-docker.sh` (extra arguments go to pytest, e.g. `-k fork -x`).
# Each phase prints its duration so CI time can be watched against the 30-minute budget.
#
#   PYTHON   interpreter with the project's dev extra (default .venv/bin/python)
#   ARCJOBS_BASE_IMAGE  base for the builds (default: the local debootstrap image)
set -euo pipefail

cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-$PWD/.venv/bin/python}"
BASE="${ARCJOBS_BASE_IMAGE:-arcjobs-base:bookworm}"
# In CI a missing engine must fail the docker tests, never skip them.
export CI="${CI:-true}"
export PYTHON ARCJOBS_BASE_IMAGE="$BASE"

log() { echo "[ci-docker] $*" >&2; }

# Run a phase and log its duration, also when it fails (then pass its status on).
timed() {
    local label=$1 t0=$SECONDS rc=0
    shift
    "$@" || rc=$?
    log "$label: $((SECONDS - t0)) s$( ((rc == 0)) || echo " (FAILED, exit $rc)")"
    return "$rc"
}

install_missing() {
    local missing=()
    command -v dockerd >/dev/null || missing+=(docker.io)
    command -v debootstrap >/dev/null || missing+=(debootstrap)
    # Compose v1 (Debian's 1.29), for the test that the backend's fallback to it works
    [[ -x /usr/bin/docker-compose ]] || missing+=(docker-compose)
    [[ ${#missing[@]} == 0 ]] && return 0
    log "apt-get install ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >/dev/null
    apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
}

# Compose v2 (2.40) builds through Bake when the buildx plugin is installed and warns on every
# other path: "buildx isn't installed", and COMPOSE_BAKE=false is itself deprecated, with a
# warning of its own. Debian's docker.io ships no buildx, so Compose's own builder is what runs
# here either way: the docker CLI's log level keeps that notice out, errors still print.
build_sandbox() {
    ARCJOBS_VERSION=$("$PYTHON" -c 'import arcjobs; print(arcjobs.__version__)') \
        docker --log-level error compose build --quiet --build-arg "BASE_IMAGE=$BASE" sandbox
}

timed "apt install" install_missing
# Stop the engine at the end only if this run started it (a developer's running engine,
# started earlier with docker-up.sh or by systemd, stays up).
if docker info >/dev/null 2>&1; then
    timed "engine up" scripts/docker-up.sh
else
    timed "engine up" scripts/docker-up.sh
    trap 'scripts/docker-down.sh' EXIT
fi
if [[ "$BASE" == arcjobs-base:* ]]; then
    timed "base image" scripts/make-base-image.sh
fi
timed "sandbox image" build_sandbox
# The Slurm cluster too: one test runs the sandbox image under the slurm backend's docker runtime.
timed "docker tests" scripts/with-slurm.sh "$PYTHON" -m pytest -m docker tests/docker "$@"
