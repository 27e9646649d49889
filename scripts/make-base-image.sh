#!/usr/bin/env bash
# Build the local Debian base image that stands in for `python:3.11-slim`.
#
# Why: no container registry is reachable from CI or from air-gapped workstations, so
# `FROM python:...` cannot be pulled. Our Dockerfiles keep their base as a build ARG; this
# script makes a substitute from the Debian mirror apt already uses (debootstrap of bookworm
# with python3, python3-venv, python3-pip, ca-certificates) and `docker import`s it.
#
# The host's CA bundle is copied in, so pip inside image builds trusts whatever TLS
# interception the host network does (PIP_CERT points pip's vendored certifi at it).
#
# Cached twice, both keyed by the suite, the package list and the CA bundle's hash (so a
# changed bundle rebuilds): the image itself (label org.arcjobs.base-key; skipped when it
# matches) and the rootfs tarball under the gitignored build/ directory (re-importing it
# takes seconds; debootstrap takes a minute).
#
# Usage: scripts/make-base-image.sh [--force]
#   ARCJOBS_BASE_IMAGE     tag to create           (default arcjobs-base:bookworm)
#   ARCJOBS_DEBIAN_MIRROR  mirror for debootstrap  (default: the host's apt mirror)
#   --force                rebuild the rootfs and the image even if cached
set -euo pipefail

cd "$(dirname "$0")/.."

TAG="${ARCJOBS_BASE_IMAGE:-arcjobs-base:bookworm}"
SUITE=bookworm
PACKAGES=python3,python3-venv,python3-pip,ca-certificates
CACHE_DIR=build/base
HOST_CA=/etc/ssl/certs/ca-certificates.crt
KEY=$({ echo "$SUITE $PACKAGES"; cat "$HOST_CA"; } | sha256sum | cut -c1-12)
TARBALL="$CACHE_DIR/$SUITE-rootfs-$KEY.tar"
FORCE=0
[[ "${1:-}" == "--force" ]] && FORCE=1

log() { echo "[make-base-image] $*" >&2; }

# The first http(s) URI of a Debian (not -security) source: deb822 files or one-line lists.
host_mirror() {
    local uri
    uri=$(grep -hsE '^\s*URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null |
        awk '{print $2}' | grep -v security | head -n1 || true)
    if [[ -z "$uri" ]]; then
        uri=$(grep -hsE '^\s*deb\s' /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null |
            awk '{for (i = 2; i <= NF; i++) if ($i ~ /^https?:/) {print $i; exit}}' |
            grep -v security | head -n1 || true)
    fi
    echo "${uri:-http://deb.debian.org/debian}"
}

build_rootfs() {
    local mirror root
    mirror="${ARCJOBS_DEBIAN_MIRROR:-$(host_mirror)}"
    command -v debootstrap >/dev/null || {
        log "debootstrap is not installed (apt-get install -y debootstrap)"
        exit 1
    }
    mkdir -p "$CACHE_DIR"
    root=$(mktemp -d "$CACHE_DIR/rootfs.XXXXXX")
    # Remove the half-built tree however we leave (it is root-owned and large).
    trap 'rm -rf "$root"' EXIT
    log "debootstrap $SUITE from $mirror (packages: $PACKAGES)"
    debootstrap --variant=minbase --include="$PACKAGES" "$SUITE" "$root" "$mirror" \
        >"$CACHE_DIR/debootstrap.log" 2>&1 || {
        tail -n 30 "$CACHE_DIR/debootstrap.log" >&2
        exit 1
    }
    cp "$HOST_CA" "$root/etc/ssl/certs/ca-certificates.crt"
    # Trim what an image never needs: package caches, indexes, docs, man pages.
    rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* \
        "$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/usr/share/info/*
    rm -f "$CACHE_DIR/$SUITE"-rootfs-*.tar # older keys: stale, and 180 MB each
    tar --numeric-owner -C "$root" -cf "$TARBALL.tmp" .
    mv "$TARBALL.tmp" "$TARBALL"
    rm -rf "$root"
    trap - EXIT
}

have_key=$(docker image inspect --format '{{index .Config.Labels "org.arcjobs.base-key"}}' \
    "$TAG" 2>/dev/null || true)
if [[ $FORCE == 0 && "$have_key" == "$KEY" ]]; then
    log "$TAG is up to date (key $KEY); nothing to do (use --force to rebuild)"
    exit 0
fi
if [[ $FORCE == 1 || ! -s "$TARBALL" ]]; then
    build_rootfs
else
    log "reusing cached rootfs $TARBALL"
fi

# The ENV lines make the imported image behave like python:*-slim for our Dockerfiles:
# a sane PATH and locale, and pip (also the one inside a venv) trusting the copied bundle.
log "importing $TARBALL as $TAG"
docker import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change "ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt" \
    --change "ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt" \
    --change 'CMD ["python3"]' \
    --change "LABEL org.arcjobs.base-key=$KEY" \
    --message "debootstrap $SUITE ($PACKAGES) + host CA bundle" \
    "$TARBALL" "$TAG" >/dev/null
log "built $TAG"
