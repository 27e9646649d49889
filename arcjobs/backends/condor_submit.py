"""Submit descriptions for steps and the DAGMan DAG of a run, built with the `htcondor2` bindings.

Everything here is pure until `write_files`: the condor backend's `request` puts a step's
submit description in `StepRequest.extra` (so `arcjobs plan --json` shows it as data),
`render` turns a set of requests into the exact files that would be written (so `arcjobs
plan` prints them), and `write_files` writes those same texts atomically into the run.

Choices a reviewer should know (docs/cluster.md explains them to users):

- container universe, `container_image` = the step's `.sif` on the shared filesystem;
  `executable = /usr/bin/env` so `arcjobs` is found on the image's own PATH;
- `should_transfer_files = NO`: the data root is on a shared filesystem, bound at `/data`
  through the job attribute `SingularityBind` — HTCondor's default `SINGULARITY_BIND_EXPR`
  (a site that overrides it must bind the data root itself);
- `getenv = false` plus an explicit environment: a step sees the same variables on every
  node, never whatever the submitting shell had;
- stdout and stderr both go to the step's `log.txt` like on every other backend; with
  `DontAppend = false` the starter opens both with O_APPEND and without O_TRUNC, so the
  streams interleave instead of overwriting each other and a retry appends to the log;
- the sandbox image's steps carry `ArcjobsNoNetwork = true`: Apptainer's network namespace
  is an execute-node setting (`SINGULARITY_EXTRA_ARGUMENTS`), which the documented site
  snippet keys on this attribute; the executor's own network namespace applies regardless;
- a job held by the system (memory exceeded, a bad node) is removed by `periodic_remove`,
  so DAGMan counts it as a failure — retried if retries remain, reported with its hold
  reason — instead of the whole DAG waiting on it forever; holds made with `condor_hold`
  (code 1) are left to their owner;
- `RETRY <node> N UNLESS-EXIT 2`: exit code 2 is arcjobs' "bad input", which no retry fixes.
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
NO_RETRY_EXIT = 2  # arcjobs.errors.UserError.exit_code
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


@dataclass(frozen=True)
class StepPaths:
    """A step's files as the execute node sees them (`cluster`) and as the access point, where
    the schedd writes the event log and the launcher reads it, sees them (`local`)."""

    cluster_dir: Path
    local_dir: Path


def submit_description(
    *,
    step: str,
    run_id: str,
    image: str,
    sif: Path,
    command: list[str],
    env: dict[str, str],
    paths: StepPaths,
    cluster_data_root: Path,
    mount: str,
    resources: Resources,
    memory_mb: int,
    site: Any,  # arcjobs.backends.site.SiteConfig (kept loose: no import cycle, plain data)
) -> dict[str, str]:
    """The submit description of one step as an ordered mapping of submit commands.

    `memory_mb` is the step's memory with the backend's default filled in. The step's GPU
    selectors win over the site's (a step knows what its model needs); requirements add up.
    """
    gpus, cpus = resources.gpus, resources.cpus
    gpu_memory = resources.gpu_memory_mb or site.gpus_minimum_memory
    capability = resources.gpu_capability or site.gpus_minimum_capability
    parts = [r for r in (site.requirements, resources.requirements) if r]
    requirements = parts[0] if len(parts) == 1 else " && ".join(f"({r})" for r in parts)
    desc: dict[str, str] = {
        "universe": "container",
        "container_image": str(sif),
        "executable": "/usr/bin/env",
        "transfer_executable": "false",
        "arguments": condor_arguments(launcher_argv(command)),
        "initialdir": str(paths.cluster_dir),
        "output": str(paths.cluster_dir / "log.txt"),
        "error": str(paths.cluster_dir / "log.txt"),
        "log": str(paths.local_dir / EVENT_LOG),
        "My.DontAppend": "false",
        "should_transfer_files": "NO",
        "getenv": "false",
        "environment": condor_environment(env),
        "request_cpus": str(cpus),
        "request_memory": f"{memory_mb}MB",
        "request_disk": f"{site.request_disk}MB",
    }
    if gpus:
        desc["request_gpus"] = str(gpus)
    if gpus and gpu_memory:
        desc["gpus_minimum_memory"] = f"{gpu_memory}MB"
    if gpus and capability:
        desc["gpus_minimum_capability"] = str(capability)
    if requirements:
        desc["requirements"] = requirements
    if site.accounting_group:
        desc["accounting_group"] = site.accounting_group
    if site.accounting_group_user:
        desc["accounting_group_user"] = site.accounting_group_user
    desc["My.SingularityBind"] = json.dumps(f"{cluster_data_root}:{mount}")
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


def node_name(step: str) -> str:
    """DAGMan node names may not contain whitespace or `+` (the splice separator)."""
    if any(c.isspace() or c == "+" for c in step):
        raise UserError(f"step name {step!r} cannot be a DAGMan node name (no spaces or '+')")
    return step


def _formatter() -> Any:
    from htcondor2 import dags

    class StepNames(dags.NodeNameFormatter):
        """One node per layer, named exactly as the step, so that a rescue file reads back."""

        def generate(self, layer_name: str, node_index: int) -> str:
            return layer_name

        def parse(self, node_name: str) -> tuple[str, int]:
            return node_name, 0

    return StepNames()


def build_dag(nodes: list[Node], run_id: str) -> Any:
    """The `htcondor2.dags.DAG` of `nodes`; needs outside `nodes` are already satisfied.

    The DAGMan job carries `ArcjobsRun` like its node jobs, so `condor_q -constraint
    'ArcjobsRun == "<run>"'` finds everything of a run.
    """
    from htcondor2 import dags

    dag = dags.DAG(dagman_job_attributes={"ArcjobsRun": json.dumps(run_id)})
    layers = {}
    for node in nodes:
        layers[node.name] = dag.layer(
            name=node_name(node.name),
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
            build_dag(nodes, run_id), Path(tmp), DAG_FILE, node_name_formatter=_formatter()
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
    as ClassAds; the DAG must name an existing .sub file for every node and only its own
    nodes in PARENT/CHILD and RETRY lines.
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
            for key in ("requirements", "periodic_remove"):
                value = sub.get(key)
                if value:
                    classad2.ExprTree(value)
        elif path.endswith(DAG_FILE):
            lines = [line.split() for line in text.splitlines()]
            jobs = {w[1]: w[2] for w in lines if w[:1] == ["JOB"]}
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
