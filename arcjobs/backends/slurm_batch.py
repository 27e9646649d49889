"""Batch scripts of steps and the order they are submitted in, for the slurm backend.

Everything here is pure: the slurm backend's `request` puts a step's `script` in
`StepRequest.extra` (so `plan --json` shows it as data), `submit_script` writes the order the
steps are submitted in, and `submit_argv` is the one sbatch command line that both `run` and
that `submit.sh` use. `plan` prints and `run` writes exactly these texts.

Choices a reviewer should know (docs/cluster.md explains them to users):

- one self-contained script per step: `#SBATCH` lines, the step's environment, the runtime's
  command line; `sbatch <step>.sbatch` by hand submits the same job;
- `--export=NONE`: the job starts from the node's login environment plus exactly the variables
  written in the script (and the site's `setup` lines), never the submitting shell's;
- `--output` is the step's `log.txt` with `--open-mode=append`: stdout and stderr together,
  appended across attempts and requeues, as on every other backend;
- retries run inside the job: a failed attempt starts again in the same allocation, up to the
  step's `retries`, unless it exits 2 (arcjobs' "bad input", which no retry fixes). Slurm sees
  one job whose exit code is the last attempt's, so `afterok` holds exactly when the step
  succeeded;
- `--kill-on-invalid-dep=yes`: a step whose upstream failed is cancelled by Slurm itself
  (reason DependencyNeverSatisfied) instead of pending for ever;
- the attempt runs in the background and the script waits for it, so SIGTERM (scancel, the
  time limit) reaches the script's trap at once: it ends the retries, and under `docker`
  removes the container, which is the Docker daemon's child and not the job's;
- the sandbox image keeps its hardening under every runtime: Docker flags as compose.yaml's
  `sandbox` service; Apptainer: `--containall --no-privs --net --network none`, on an image
  that is read-only anyway.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from arcjobs.backends.site import SlurmSite
from arcjobs.errors import UserError
from arcjobs.spec.model import Resources

SUBMIT_FILE = "submit.sh"
NO_RETRY_EXIT = UserError.exit_code  # bad input: no retry fixes it
SANDBOX_MEMORY = "8g"  # compose.yaml's default for the sandbox service

# compose.yaml's `sandbox` service as `docker run` flags (and the README's `docker run` line).
SANDBOX_DOCKER = (
    "--network", "none",
    "--read-only",
    "--tmpfs", "/tmp:rw,noexec,nosuid,nodev,size=1g,mode=1777",
    "--cap-drop", "ALL",
    "--security-opt", "no-new-privileges",
    "--init",
    "--pids-limit", "512",
    "--ulimit", "core=0",
    "--env", "HOME=/tmp",
    "--env", "XDG_CACHE_HOME=/tmp/.cache",
)  # fmt: skip
# compose.yaml's `train`/`infer` services: NCCL and vLLM need more than 64 MB of /dev/shm.
MODEL_DOCKER = ("--ipc", "host", "--init", "--ulimit", "core=0")
# The sandbox under Apptainer: its own network namespace with only loopback, no privileges
# even for root, and private /tmp, home and /dev (in a job-private scratch directory).
SANDBOX_APPTAINER = ("--containall", "--workdir", "$scratch", "--no-privs", "--net", "--network", "none")  # fmt: skip


@dataclass(frozen=True)
class BatchJob:
    """One step as Slurm sees it; `StepRequest.extra.slurm` of the slurm backend."""

    name: str  # the Slurm job name
    script: str  # the whole batch script
    image: str  # the step's image name (train, infer, sandbox)
    image_ready: bool  # apptainer: a .sif is in the cache; docker: the image is built
    memory_mb: int | None  # what --mem asks (None: the partition's default)


@dataclass(frozen=True)
class Runtime:
    """How a step's command is started on the node.

    kind: `none` (the node's own environment), `docker` or `apptainer`.
    image: what the runtime runs: a Docker image id or tag, a .sif path; unused for `none`.
    mount: the data root on the node (host path) and where the step sees it.
    """

    kind: str
    image: str
    data_root: Path
    mount: str
    workdir: str  # the step directory as the step sees it
    sandbox: bool  # the sandbox image: hardened
    cpus: int = 1  # docker: --cpus
    memory: str | None = None  # docker: --memory (and --memory-swap: no swap), e.g. 8g
    user: str = ""  # docker: uid:gid the container runs as
    container: str = ""  # docker: the container's name


def job_name(run_id: str, step: str) -> str:
    """`<run>.<step>`, in the characters every Slurm tool prints and filters without quoting."""
    return re.sub(r"[^A-Za-z0-9_.=+-]+", "_", f"{run_id}.{step}")


def _directive_value(text: str) -> str:
    """A value in an `#SBATCH` line: sbatch reads double-quoted values with spaces."""
    if any(c in text for c in '"\n\r\0'):
        raise ValueError(f"{text!r} cannot be written in an #SBATCH line")
    return f'"{text}"' if any(c.isspace() for c in text) else text


def directives(
    *,
    name: str,
    log: Path,
    workdir: Path,
    resources: Resources,
    site: SlurmSite,
) -> list[str]:
    """The step's sbatch options, in the order they appear in its script."""
    options = [
        f"--job-name={name}",
        # `%` starts a filename pattern (%j, ...) in --output; `%%` is a literal one.
        f"--output={_directive_value(str(log).replace('%', '%%'))}",
        "--open-mode=append",
        f"--chdir={_directive_value(str(workdir))}",
        "--nodes=1",
        "--ntasks=1",
        f"--cpus-per-task={resources.cpus}",
    ]
    if resources.memory_mb:
        options.append(f"--mem={resources.memory_mb}M")
    if resources.gpus:
        typed = f"{site.gpu_type}:" if site.gpu_type else ""
        if site.gpu_flag == "gpus":
            options.append(f"--gpus={typed}{resources.gpus}")
        else:
            options.append(f"--gres=gpu:{typed}{resources.gpus}")
    for flag in ("time", "partition", "account", "qos"):
        value = getattr(site, flag)
        if value:
            options.append(f"--{flag}={_directive_value(str(value))}")
    return [*options, "--export=NONE", "--kill-on-invalid-dep=yes", *site.sbatch]


def runtime_command(rt: Runtime, command: list[str], env: dict[str, str], gpus: int) -> str:
    """The shell command that runs `command` under the runtime (one line, words quoted; the
    only expansions are the job's own: its GPUs and scratch directory)."""
    q = shlex.join
    if rt.kind == "none":
        return q(command)
    if rt.kind == "docker":
        argv = ["docker", "run", "--rm", "--name", rt.container, "--user", rt.user]
        argv += ["--volume", f"{rt.data_root}:{rt.mount}", "--workdir", rt.workdir]
        argv += [a for k in env for a in ("--env", k)]  # values from the script's exports
        argv += SANDBOX_DOCKER if rt.sandbox else MODEL_DOCKER
        argv += ["--cpus", str(rt.cpus)]
        argv += ["--memory", rt.memory, "--memory-swap", rt.memory] if rt.memory else []
        # Docker reads --gpus as CSV: a device list must reach it inside double quotes.
        gpus_flag = ' --gpus "\\"device=$CUDA_VISIBLE_DEVICES\\""' if gpus else ""
        return q(argv) + gpus_flag + " " + q([rt.image, *command])
    argv = ["apptainer", "exec", "--cleanenv", "--bind", f"{rt.data_root}:{rt.mount}"]
    argv += ["--pwd", rt.workdir] + (["--nv"] if gpus else [])
    sandbox = (
        " " + " ".join(SANDBOX_APPTAINER).replace("$scratch", '"$scratch"') if rt.sandbox else ""
    )
    return q(argv) + sandbox + " " + q([rt.image, *command])


def exports(rt: Runtime, env: dict[str, str], gpus: int) -> list[str]:
    """`export` lines of the step's environment. Apptainer's `--cleanenv` passes on only
    `APPTAINERENV_*` variables (whatever their value holds, commas included); Docker takes
    each by name (`--env NAME`) from the script's own environment."""
    prefix = "APPTAINERENV_" if rt.kind == "apptainer" else ""
    lines = [f"export {prefix}{k}={shlex.quote(v)}" for k, v in env.items()]
    if rt.kind == "apptainer" and gpus:
        lines.append('export APPTAINERENV_CUDA_VISIBLE_DEVICES="${CUDA_VISIBLE_DEVICES:-}"')
    return lines


def script(
    *,
    step: str,
    run_id: str,
    options: list[str],
    command: list[str],
    env: dict[str, str],
    rt: Runtime,
    gpus: int,
    retries: int,
    setup: Sequence[str],
) -> str:
    """The whole batch script of one step."""
    attempts = retries + 1
    lines = ["#!/bin/bash", *(f"#SBATCH {o}" for o in options)]
    lines += [f"# arcjobs step {step} of run {run_id}; by hand: sbatch {step}.sbatch"]
    lines += [f"# {line}" for line in f"command: {shlex.join(command)}".splitlines()]
    lines += exports(rt, env, gpus)
    lines += list(setup)
    stop = "exit 143"
    if rt.kind == "docker":
        stop = f"docker rm -f {shlex.quote(rt.container)} >/dev/null 2>&1; {stop}"
    if rt.kind == "apptainer" and rt.sandbox:
        lines += [
            'scratch=$(mktemp -d "${TMPDIR:-/tmp}/arcjobs-XXXXXX")',
            "trap 'rm -rf \"$scratch\"' EXIT",
        ]
    summary = shlex.quote(" ".join(command[:3]))
    lines += [
        f'trap \'echo "== $(date "+%F %T") stopped by SIGTERM"; {stop}\' TERM',
        f"for attempt in $(seq {attempts}); do",
        f'    echo "== $(date "+%F %T") attempt $attempt of {attempts}, Slurm job'
        f' $SLURM_JOB_ID on $(hostname):" {summary}',
        f"    {runtime_command(rt, command, env, gpus)} &",
        "    wait $!",
        "    code=$?",
        f'    if [ "$code" -eq 0 ] || [ "$code" -eq {NO_RETRY_EXIT} ]; then break; fi',
        "done",
        'exit "$code"',
    ]
    return "\n".join(lines) + "\n"


# --- the submission ----------------------------------------------------------------------


def submit_argv(script_file: str, after: Sequence[str]) -> list[str]:
    """The sbatch command line of one step: its job id on stdout, after the jobs it needs."""
    deps = ["--dependency=afterok:" + ":".join(after)] if after else []
    return ["sbatch", "--parsable", *deps, script_file]


@dataclass(frozen=True)
class Submission:
    """One step in the submission order: its script, the steps (or live job ids) it waits for,
    and whether it is complete (then not submitted; shown by `plan`)."""

    step: str
    needs: tuple[str, ...]  # steps submitted in this order before it
    live: tuple[str, ...] = ()  # job ids of needed steps already in the queue (resume)
    done: bool = False


def submit_script(order: list[Submission], run_id: str, step_dirs: Sequence[str]) -> str:
    """`submit.sh`: the order and dependencies `run` submits with, as a script that does the
    same by hand. It makes the step directories first (Slurm opens each log there; `run` makes
    them too). Each sbatch line is `submit_argv`, the job ids of earlier lines as `${job[STEP]}`."""
    lines = [
        "#!/bin/bash",
        f"# Run {run_id}: each step is submitted after the jobs it needs (afterok), in this order.",
        "# `arcjobs run` submits exactly these sbatch command lines; by hand: bash submit.sh",
        "set -euo pipefail",
        'cd "$(dirname "$0")"',
        "declare -A job",
        'record() { job[$1]=${2%%;*}; echo "$1: Slurm job ${job[$1]}"; }  # STEP SBATCH-OUTPUT',
    ]
    if step_dirs:
        lines.append(shlex.join(["mkdir", "-p", *step_dirs]))
    for s in order:
        if s.done:
            lines.append(f"# {s.step}: complete in this run, not submitted")
            continue
        after = [f"${{job[{n}]}}" for n in s.needs] + list(s.live)  # step names need no quoting
        argv = submit_argv(script_file(s.step), after)
        words = " ".join(f'"{w}"' if "${job[" in w else shlex.quote(w) for w in argv)
        lines.append(f'record {s.step} "$({words})"')
    return "\n".join(lines) + "\n"


def script_file(step: str) -> str:
    return f"{step}.sbatch"
