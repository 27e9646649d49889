#!/usr/bin/env bash
# Stop the dockerd that scripts/docker-up.sh started, by the pid it recorded.
#
# Why by pid: the engine may be someone else's (a system service, another job); only the
# process we started, and recorded, is ours to stop. Without a pid file this does nothing.
set -euo pipefail

cd "$(dirname "$0")/.."

STATE_DIR="${ARCJOBS_DOCKER_STATE:-$PWD/build/docker}"
PIDFILE="$STATE_DIR/dockerd.pid"

log() { echo "[docker-down] $*" >&2; }

if [[ ! -f "$PIDFILE" ]]; then
    log "no $PIDFILE: no dockerd of ours to stop"
    exit 0
fi
pid=$(cat "$PIDFILE")
if ! kill -0 "$pid" 2>/dev/null; then
    log "dockerd $pid already gone"
    rm -f "$PIDFILE"
    exit 0
fi
# Containers we left running would keep mounts busy; stop them first (bounded), then the
# daemon with SIGTERM (it shuts containerd down cleanly), SIGKILL after 30 s.
ids=$(docker ps -q 2>/dev/null || true)
if [[ -n "$ids" ]]; then
    log "stopping containers: $(echo "$ids" | tr '\n' ' ')"
    # shellcheck disable=SC2086  # one id per word is what we want
    docker stop --time 5 $ids >/dev/null 2>&1 || true
fi
log "stopping dockerd $pid"
kill -TERM "$pid"
for ((i = 0; i < 60; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.5
done
if kill -0 "$pid" 2>/dev/null; then
    log "dockerd $pid ignored SIGTERM for 30 s; killing it"
    kill -KILL "$pid"
fi
rm -f "$PIDFILE"
log "stopped"
