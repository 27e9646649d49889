#!/bin/sh
# Triton (under vLLM's and Liger's kernels) compiles a small C launcher the first time each
# kernel runs, so the GPU images need a C compiler and Python's headers at run time.
# python:*-slim ships the headers; Debian's python3 (the offline base) does not.
set -eu
apt-get update
apt-get install -y --no-install-recommends gcc libc6-dev
if ! python3 -c "import os, sys, sysconfig; sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()['include'], 'Python.h')))"; then
    apt-get install -y --no-install-recommends python3-dev
fi
rm -rf /var/lib/apt/lists/*
