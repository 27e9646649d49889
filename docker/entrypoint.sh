#!/bin/sh
# Entry point of the arcjobs images: `arcjobs` by default, any other program on request.
#
# Why a shim instead of ENTRYPOINT ["arcjobs"]: the design and the compose backend spell the
# whole command (`docker run IMG arcjobs sandbox run ...`, `compose run sandbox arcjobs step ...`),
# while people at a terminal expect `docker run IMG sandbox run ...` to work too, and tests need
# `python3 -c ...`. So: no arguments → arcjobs --help; an option or a name that is not a
# program on PATH → arguments to arcjobs; otherwise run that program.
set -eu
if [ "$#" -eq 0 ]; then
    exec arcjobs --help
fi
case "$1" in
    -*) exec arcjobs "$@" ;;
esac
if command -v -- "$1" >/dev/null 2>&1; then
    exec "$@"
fi
exec arcjobs "$@"
