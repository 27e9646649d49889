"""Submit descriptions for steps and the DAGMan DAG of a run, built with the `htcondor2` bindings.

Everything here is pure until `write_files`: the condor backend's `request` puts a step's
submit description in `StepRequest.extra` (so `arcjobs plan --json` shows it as data),
`render` turns a set of requests into the exact files that would be written (so `arcjobs
plan` prints them), and `write_files` writes those same texts atomically into the run.

Choices a reviewer should know (docs/cluster.md explains them to users); HTCondor's source
(submit_utils.cpp, the starter) decides each, checked against HTCondor 23.0 to 25.x:

- container universe, `container_image` = the step's `.sif` on the shared filesystem, with
  `transfer_container = false`: without it condor_submit adds the image to the input files
  (`process_container_input_files`), which `should_transfer_files = NO` then refuses ("you
  specified files you want Condor to transfer via transfer_input_files, but you disabled
  should_transfer_files"), and DAGMan gives up on the node without a retry;
- `executable = /usr/bin/env` so `arcjobs` is found on the image's own PATH;
- `should_transfer_files = NO`: the data root is on a shared filesystem, the same path on the
  access point and the execute nodes (SiteConfig.data_root), bound at `/data` through the job
  attribute `SingularityBind` (HTCondor's default `SINGULARITY_BIND_EXPR`). condor_submit then
  ANDs `TARGET.FileSystemDomain == MY.FileSystemDomain` into the requirements
  (`SetRequirements`), so the pool must give the access point and the execute nodes one
  FILESYSTEM_DOMAIN;
- `getenv = false` plus an explicit environment: a step sees the same variables on every
  node, never whatever the submitting shell had;
- stdout and stderr both go to the step's `log.txt` like on every other backend; with
  `erase_output_and_error_on_restart = false` (job attribute EraseOutputAndErrorOnRestart)
  the starter opens both with O_APPEND and without O_TRUNC (`VanillaProc::outputOpenFlags`),
  so the streams interleave and a retry or an eviction appends to the log;
- GPU constraints go into `require_gpus` (Capability, GlobalMemoryMb, MaxSupportedVersion of
  each GPU), which 23.0 LTS reads too; the `gpus_minimum_*` commands that 24.0 turns into the
  same expression do not exist in 23.0, which ignores them without a word;
- the sandbox image's steps carry `ArcjobsNoNetwork = true`: Apptainer's network namespace
  is an execute-node setting (`SINGULARITY_EXTRA_ARGUMENTS`), which the documented site
  snippet keys on this attribute; the executor's own network namespace applies regardless;
- a job held by the system (memory exceeded, a bad node) is removed by `periodic_remove`,
  so DAGMan counts it as a failure — retried if retries remain, reported with its hold
  reason — instead of the whole DAG waiting on it forever; holds made with `condor_hold`
  (code 1) are left to their owner;
- `RETRY <node> N UNLESS-EXIT 2`: exit code 2 is arcjobs' "bad input", which no retry fixes;
- node names are the step names with `.` as `_`: the DAGMan manual reserves `.` and `+`.
"""

from __future__ import annotations

import base64
import json
import shlex
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from arcjobs.errors import UserError
from arcjobs.spec.model import Resources

DAG_FILE = "run.dag"
EVENT_LOG = "condor.log"  # per-step job event log, beside log.txt
NO_RETRY_EXIT = UserError.exit_code  # bad input: no retry fixes it
USER_HOLD = 1  # HoldReasonCode of condor_hold


# --- the submit language's quoting --------------------------------------------------------


def _escape_macros(text: str) -> str:
    """condor_submit expands `$(...)` everywhere; `$(DOLLAR)` is its literal dollar sign."""
    return text.replace("$", "$(DOLLAR)")


def _quote_word(word: str) -> str:
    """One word of the new (double-quoted) syntax: `"` → `""`; spaces or `'` → '...' with `''`."""
    word = word.replace('"', '""')
    if word == "" or any(c.isspace() or c == "'" for c in word):
        word = "'" + word.replace("'", "''") + "'"
    return word


def representable(argv: Iterable[str]) -> bool:
    """Submit values are single lines: control characters cannot be spelled in them."""
    return not any(c in word for word in argv for c in "\n\r\x00")


def condor_arguments(argv: list[str]) -> str:
    """`arguments` in the new syntax, macros escaped (see the condor_submit manual)."""
    return _escape_macros('"' + " ".join(_quote_word(a) for a in argv) + '"')


def condor_environment(env: dict[str, str]) -> str:
    """`environment` in the new syntax: space-separated NAME=value, a pair quoted if needed."""
    return _escape_macros('"' + " ".join(_quote_word(f"{k}={v}") for k, v in env.items()) + '"')


def launcher_argv(command: list[str]) -> list[str]:
    """What `/usr/bin/env` runs: the command itself, or — when a word holds a newline (a
    multi-line `run:` script) — a one-line Python that unpacks it, since no submit value can
    hold a newline."""
    if representable(command):
        return command
    packed = base64.b64encode(json.dumps(command).encode()).decode()
    code = "import base64,json,os,sys;a=json.loads(base64.b64decode(sys.argv[1]));os.execvp(a[0],a)"
    return ["python3", "-c", code, packed]


# --- one step --------------------------------------------------------------------------------


# A GPU reports less memory than its nominal size (GlobalMemoryMb: an A100-40GB 40536 of
# 40960 MiB, an L40S 46068 of 49152, a T4 15109 of 16384, a B200 183359 of 196608), so a
# nominal `gpu_memory` matches GPUs reporting at least this share of it; the next smaller
# size of card (32 GB under 40, 40 under 48, 48 under 80) stays below it.
REPORTED_GPU_MEMORY = 0.9


def cuda_version(text: str) -> int:
    """`13.0` → 13000: HTCondor's MaxSupportedVersion form, major * 1000 + minor * 10
    (submit_utils.cpp, gpus_minimum_runtime; condor_gpu_discovery publishes it so)."""
    major, _, minor = text.partition(".")
    return int(major) * 1000 + int(minor or 0) * 10


def require_gpus(capability: float | None, memory_mb: int | None, runtime: str | None) -> str:
    """The `require_gpus` expression, evaluated against each GPU's properties.

    24.0 builds the same clauses from `gpus_minimum_capability/memory/runtime`
    (`SubmitHash::SetResourceRequirements`); written out, they also hold on 23.0 LTS, which
    has no such commands.
    """
    clauses = []
    if capability:
        clauses.append(f"Capability >= {capability}")
    if memory_mb:
        clauses.append(f"GlobalMemoryMb >= {int(memory_mb * REPORTED_GPU_MEMORY)}")
    if runtime:
        clauses.append(f"MaxSupportedVersion >= {cuda_version(runtime)}")
    return " && ".join(clauses)


def submit_description(
    *,
    step: str,
    run_id: str,
    image: str,
    sif: Path,
    command: list[str],
    env: dict[str, str],
    step_dir: Path,
    data_root: Path,
    mount: str,
    resources: Resources,
    memory_mb: int,
    site: Any,  # arcjobs.backends.site.SiteConfig (kept loose: no import cycle, plain data)
) -> dict[str, str]:
    """The submit description of one step as an ordered mapping of submit commands.

    `memory_mb` is the step's memory with the backend's default filled in. The step's GPU
    selectors win over the site's (a step knows what its model needs); requirements add up.
    Every path is the same on the access point and the execute nodes (SiteConfig.data_root).
    """
    gpus, cpus = resources.gpus, resources.cpus
    parts = [r for r in (site.requirements, resources.requirements) if r]
    requirements = parts[0] if len(parts) == 1 else " && ".join(f"({r})" for r in parts)
    desc: dict[str, str] = {
        "universe": "container",
        "container_image": str(sif),
        "transfer_container": "false",
        "executable": "/usr/bin/env",
        "transfer_executable": "false",
        "arguments": condor_arguments(launcher_argv(command)),
        "initialdir": str(step_dir),
        "output": str(step_dir / "log.txt"),
        "error": str(step_dir / "log.txt"),
        "log": str(step_dir / EVENT_LOG),
        "erase_output_and_error_on_restart": "false",
        "should_transfer_files": "NO",
        "getenv": "false",
        "environment": condor_environment(env),
        "request_cpus": str(cpus),
        "request_memory": f"{memory_mb}MB",
        "request_disk": f"{site.request_disk}MB",
    }
    if gpus:
        desc["request_gpus"] = str(gpus)
        wanted = require_gpus(
            resources.gpu_capability or site.gpus_minimum_capability,
            resources.gpu_memory_mb or site.gpus_minimum_memory,
            site.gpus_minimum_runtime,
        )
        if wanted:
            desc["require_gpus"] = wanted
    if requirements:
        desc["requirements"] = requirements
    if site.accounting_group:
        desc["accounting_group"] = site.accounting_group
    if site.accounting_group_user:
        desc["accounting_group_user"] = site.accounting_group_user
    desc["My.SingularityBind"] = json.dumps(f"{data_root}:{mount}")
    desc["My.ArcjobsRun"] = json.dumps(run_id)
    desc["My.ArcjobsStep"] = json.dumps(step)
    desc["My.ArcjobsImage"] = json.dumps(image)
    if image == "sandbox":
        desc["My.ArcjobsNoNetwork"] = "true"
    desc["periodic_remove"] = f"(JobStatus == 5) && (HoldReasonCode =!= {USER_HOLD})"
    return desc


def to_submit(desc: dict[str, str]) -> Any:
    """An `htcondor2.Submit` of `desc` (imported here: the bindings load only when used)."""
    import htcondor2

    return htcondor2.Submit(desc)


# --- the DAG ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Node:
    """One DAG node: a step's submit description, its parents, retries, and whether done."""

    name: str
    desc: dict[str, str]
    needs: tuple[str, ...]
    retries: int
    done: bool = False
    header: str = ""  # comment lines put at the top of the node's .sub file


# DAG keywords that cannot name a node, compared without case as DAGMan does: PARENT and CHILD
# (the manual's "DAG input file"), ALL_NODES (dag.cpp compares it with strcasecmp).
RESERVED_NODE_NAMES = ("PARENT", "CHILD", "ALL_NODES")


def node_names(steps: Iterable[str]) -> dict[str, str]:
    """Each step's DAGMan node name: the step name with `.` as `_`.

    The manual reserves `.` and `+` in node names "for system use" (`+` separates splices);
    `.` is in every branch and round name (`learn.lora_rank=16`), so it is mapped, only in
    node names: files, logs and run.json keep the step names. What cannot be mapped without
    a collision or a DAG keyword is refused.
    """
    names: dict[str, str] = {}
    for step in steps:
        node = step.replace(".", "_")
        if any(c.isspace() or c == "+" for c in step):
            raise UserError(f"step {step!r} cannot be a DAGMan node name (no spaces or '+')")
        if node.upper() in RESERVED_NODE_NAMES:
            raise UserError(
                f"step {step!r} cannot be a DAGMan node name: {', '.join(RESERVED_NODE_NAMES)} "
                "are DAG keywords in any case; rename the step"
            )
        clash = next((s for s, n in names.items() if n == node), None)
        if clash is not None:
            raise UserError(
                f"steps {clash!r} and {step!r} would both be DAGMan node {node!r} "
                "('.' becomes '_' in node names); rename one"
            )
        names[step] = node
    return names


def formatter(steps: Iterable[str]) -> Any:
    """The node name formatter for a DAG of `steps`: one node per layer, the layer named as
    the step; `parse` maps node names back, so that a rescue file reads back."""
    from htcondor2 import dags

    to_node = node_names(steps)
    to_step = {node: step for step, node in to_node.items()}

    class StepNames(dags.NodeNameFormatter):
        def generate(self, layer_name: str, node_index: int) -> str:
            return to_node[layer_name]

        def parse(self, node_name: str) -> tuple[str, int]:
            return to_step[node_name], 0

    return StepNames()


def build_dag(nodes: list[Node], run_id: str) -> Any:
    """The `htcondor2.dags.DAG` of `nodes`; needs outside `nodes` are already satisfied.

    The DAGMan job carries `ArcjobsRun` like its node jobs, so `condor_q -constraint
    'ArcjobsRun == "<run>"'` finds everything of a run.
    """
    from htcondor2 import dags

    dag = dags.DAG(dagman_job_attributes={"ArcjobsRun": json.dumps(run_id)})
    node_names(n.name for n in nodes)  # refused here, before any layer exists
    layers = {}
    for node in nodes:
        layers[node.name] = dag.layer(
            name=node.name,
            submit_description=to_submit(node.desc),
            retries=node.retries,
            retry_unless_exit=NO_RETRY_EXIT,
            done=node.done,
        )
    for node in nodes:
        parents = [layers[n] for n in node.needs if n in layers]
        if parents:
            layers[node.name].add_parents(*parents)
    return dag


def render(nodes: list[Node], dag_dir: Path, run_id: str) -> dict[str, str]:
    """Every file of the DAG as `path → text`, exactly as `write_files` will write them.

    `htcondor2.dags.write_dag` writes into a scratch directory and the texts are read back,
    so the files come from the bindings' own writer, not from a copy of its format.
    """
    from htcondor2 import dags

    headers = {f"{n.name}.sub": n.header for n in nodes}
    with tempfile.TemporaryDirectory(prefix="arcjobs-dag-") as tmp:
        dags.write_dag(
            build_dag(nodes, run_id),
            Path(tmp),
            DAG_FILE,
            node_name_formatter=formatter(n.name for n in nodes),
        )
        files = {}
        for path in sorted(Path(tmp).iterdir()):
            text = path.read_text()
            files[str(dag_dir / path.name)] = headers.get(path.name, "") + text
    return files


def validate(files: dict[str, str], nodes: list[Node] | None = None) -> None:
    """Parse every generated file back with the bindings; raise if any would not submit.

    Submit files must parse, carry a `queue` statement and — given the `nodes` they were
    rendered from — read back as exactly the commands built; ClassAd expressions must parse
    as ClassAds; the DAG must name an existing .sub file for every node, give no node a name
    DAGMan reserves, and name only its own nodes in PARENT/CHILD and RETRY lines.
    """
    import classad2
    import htcondor2

    built = {f"{n.name}.sub": n.desc for n in nodes or []}
    subs = {Path(p).name for p in files if p.endswith(".sub")}
    for path, text in files.items():
        if path.endswith(".sub"):
            sub = htcondor2.Submit(text)
            if not any(line.split()[:1] == ["queue"] for line in text.lower().splitlines()):
                raise ValueError(f"{path}: no queue statement")
            desc = built.get(Path(path).name)
            if desc is not None and dict(sub) != desc:
                raise ValueError(f"{path}: does not read back as the description it was built from")
            for key in ("requirements", "require_gpus", "periodic_remove"):
                value = sub.get(key)
                if value:
                    classad2.ExprTree(value)
        elif path.endswith(DAG_FILE):
            lines = [line.split() for line in text.splitlines()]
            jobs = {w[1]: w[2] for w in lines if w[:1] == ["JOB"]}
            bad = [n for n in jobs if set(n) & {".", "+"} or n.upper() in RESERVED_NODE_NAMES]
            if bad:
                raise ValueError(f"{path}: node names DAGMan reserves or cannot parse: {bad}")
            missing = sorted(set(jobs.values()) - subs)
            if missing:
                raise ValueError(f"{path}: nodes refer to missing submit files {missing}")
            for w in lines:
                named = [x for x in w[1:] if x != "CHILD"] if w[:1] == ["PARENT"] else []
                named += w[1:2] if w[:1] == ["RETRY"] else []
                unknown = [x for x in named if x not in jobs]
                if unknown:
                    raise ValueError(f"{path}: unknown nodes {unknown} in {' '.join(w)!r}")


def header(step: str, command: list[str]) -> str:
    """The comment at the top of a node's .sub file: the command as a person would type it
    (a multi-line `run:` script stays a comment on every line)."""
    lines = f"arcjobs step {step}\ncommand: {shlex.join(command)}".splitlines()
    return "".join(f"# {line}\n" for line in lines)


def write_files(files: dict[str, str]) -> None:
    """Write rendered files, each atomically and the DAG last, so that a crash never leaves a
    DAG naming a submit file that is missing or half-written."""
    from arcjobs import atomic

    for path in sorted(files, key=lambda p: p.endswith(DAG_FILE)):
        atomic.write_text(Path(path), files[path])
