#!/usr/bin/env bash
# Stop the Slurm cluster that scripts/slurm-up.sh started, by the pids it recorded.
#
# Why by pid: another Slurm or munge on this machine (a system service, a developer's own)
# is not ours to stop; only the processes recorded in $ARCJOBS_SLURM_DIR are. Jobs still
# running on the node are cancelled first, so that no step outlives its cluster.
set -euo pipefail

DIR="${ARCJOBS_SLURM_DIR:-${TMPDIR:-/tmp}/arcjobs-slurm-$(id -u)}"

log() { echo "[slurm-down] $*" >&2; }

if [[ ! -d "$DIR" ]]; then
    log "no $DIR: no cluster of ours to stop"
    exit 0
fi
if [[ -f "$DIR/slurmctld.pid" ]] && kill -0 "$(cat "$DIR/slurmctld.pid")" 2>/dev/null; then
    SLURM_CONF="$DIR/slurm.conf" timeout 30 scancel --full --user="$(id -un)" 2>/dev/null || true
fi
# slurmd first (it ends its job steps), the controller next, munge last (both need it).
for d in slurmd slurmctld munged; do
    [[ -f "$DIR/$d.pid" ]] || continue
    pid=$(cat "$DIR/$d.pid")
    if kill -0 "$pid" 2>/dev/null; then
        log "stopping $d $pid"
        kill -TERM "$pid"
        for ((i = 0; i < 60; i++)); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.25
        done
        if kill -0 "$pid" 2>/dev/null; then
            log "$d $pid ignored SIGTERM for 15 s; killing it"
            kill -KILL "$pid"
        fi
    fi
    rm -f "$DIR/$d.pid"
done
log "stopped (logs kept in $DIR)"
