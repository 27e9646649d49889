#!/usr/bin/env bash
# The first GPU run's acceptance checks (issues 21 and 24), within 8 minutes on one H100/H200.
#
#   benchmarks/gpu_acceptance.sh [--out DIR]          # on the GPU machine
#   benchmarks/gpu_acceptance.sh --cpu-smoke [...]    # CPU, tiny model: the script still works
#
# In order, each under its own time limit and the whole under ACCEPT_BUDGET_S (a check the
# budget no longer fits is recorded as skipped): imports (before anything is timed), devices
# (driver against the CUDA build, arcjobs' GPU order against CUDA's), throughput
# (benchmarks/train_throughput.py: A, B, ratio, MFU), the train step on an 8B-shaped random
# model and its resume, vLLM's sampler as the infer image runs it, and QLoRA if time is left.
# benchmarks/gpu_acceptance.py has the checks themselves.
#
# Writes DIR/results.json and DIR/results.md (default DIR: ./acceptance-<time>), and beside
# them each check's JSON, status and log. Exit status 0 when every required check passed.
#
# Environment:
#   PYTHON            the interpreter with torch & co. (python3)
#   ARCJOBS_WHEELS    a directory of wheels for packages the machine lacks (trl, liger-kernel,
#                     datasets, ...): installed without network into DIR/site when an import
#                     fails, then the imports are checked again
#   ACCEPT_BUDGET_S   seconds for all checks (460: the report and margin fit in 8 minutes)
#   ACCEPT_LAYERS     layers of the train checks' 8B-shaped model (32)
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
python=${PYTHON:-python3}
cpu=0
out=""
while [ $# -gt 0 ]; do
    case "$1" in
        --cpu-smoke) cpu=1 ;;
        --out) out=${2:?--out needs a directory}; shift ;;
        *) echo "usage: $0 [--cpu-smoke] [--out DIR]" >&2; exit 2 ;;
    esac
    shift
done
out=${out:-$PWD/acceptance-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$out/work"
out=$(cd "$out" && pwd)
export PYTHONPATH="$out/site:$repo${PYTHONPATH:+:$PYTHONPATH}"
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false PYTHONUNBUFFERED=1
budget=${ACCEPT_BUDGET_S:-460}
start=$(date +%s)
failed=()
acc=("$python" "$here/gpu_acceptance.py")

# check NAME LIMIT_S REQUIRED COMMAND...: run COMMAND for at most LIMIT_S (or what is left of
# the budget) with its output in NAME.log; NAME.status says how it went.
check() {
    local name=$1 limit=$2 required=$3 state rc=0
    shift 3
    local began left
    began=$(date +%s)
    left=$((budget - (began - start)))
    if [ "$left" -lt 20 ]; then
        state="skipped: out of time"
    else
        [ "$limit" -gt "$left" ] && limit=$left
        timeout --kill-after=10 "$limit" "$@" >"$out/$name.log" 2>&1 || rc=$?
        case $rc in
            0) state=passed ;;
            124 | 137) state="timed out after ${limit}s" ;;
            *) state="failed (exit $rc)" ;;
        esac
    fi
    printf '{"state": "%s", "began": %d, "seconds": %d, "required": %s}\n' \
        "$state" "$began" $(($(date +%s) - began)) "$required" >"$out/$name.status"
    echo "$name: $state" >&2
    if [ "$state" != passed ] && [ "$required" = true ]; then
        failed+=("$name")
    fi
}

finish() {
    "${acc[@]}" report --dir "$out" || true
    echo "results: $out/results.json, $out/results.md" >&2
    if [ ${#failed[@]} -gt 0 ]; then
        echo "failed: ${failed[*]}" >&2
        exit 1
    fi
    exit 0
}

# Imports first, before anything is timed; wheels carried beside the script fill the gaps.
check imports 300 true "${acc[@]}" imports --json "$out/imports.json"
if [ ${#failed[@]} -gt 0 ] && [ -n "${ARCJOBS_WHEELS:-}" ]; then
    missing=$(tail -n 1 "$out/imports.log")
    # shellcheck disable=SC2086  # one word per package
    "$python" -m pip install --quiet --no-index --find-links "$ARCJOBS_WHEELS" \
        --target "$out/site" $missing >"$out/wheels.log" 2>&1 || true
    failed=()
    check imports 300 true "${acc[@]}" imports --json "$out/imports.json"
fi
if [ ${#failed[@]} -gt 0 ]; then
    finish
fi

if [ "$cpu" = 1 ]; then
    check devices 60 false "${acc[@]}" devices --cpu --json "$out/devices.json"
    check throughput 300 true "$python" "$here/train_throughput.py" --cpu-smoke \
        --steps 1 --warmup 0 --json "$out/throughput.json"
    check model 120 true "${acc[@]}" model --tiny --out "$out/work/model" --json "$out/model.json"
    check train 300 true "${acc[@]}" train --cpu --model "$out/work/model" \
        --work "$out/work/train" --json "$out/train.json" --steps 2 --samples 4 --batch 2
else
    check devices 60 true "${acc[@]}" devices --json "$out/devices.json"
    check throughput 200 true "$python" "$here/train_throughput.py" \
        --steps 4 --warmup 1 --json "$out/throughput.json"
    check model 90 true "${acc[@]}" model --layers "${ACCEPT_LAYERS:-32}" \
        --out "$out/work/model" --json "$out/model.json"
    check train 150 true "${acc[@]}" train --model "$out/work/model" \
        --work "$out/work/train" --json "$out/train.json" --steps 10 --samples 32 --batch 4
    check tiny 60 false "${acc[@]}" model --tiny --out "$out/work/tiny" --json "$out/tiny.json"
    check sampler 150 false "${acc[@]}" sampler --model "$out/work/tiny" \
        --work "$out/work/sampler" --json "$out/sampler.json"
    check qlora 90 false "${acc[@]}" train --four-bit --model "$out/work/model" \
        --work "$out/work/qlora" --json "$out/qlora.json" --steps 5 --samples 16 --batch 4
fi
finish
