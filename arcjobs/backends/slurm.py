"""The `slurm` backend: a run becomes one sbatch job per step, chained with `afterok`.

Each step is a batch script (arcjobs.backends.slurm_batch) that runs `arcjobs step ...` under
the site's runtime: in a `.sif` with Apptainer (the cluster default), in a Docker image (dev
and single-node clusters), or in the node's own environment (`none`). Every step of a run is
submitted at once (`whole_dag`), each after the jobs it needs, so Slurm carries the run on if
the launcher goes away; the launcher then only follows the queue.

- Status: one `squeue` for every live job per poll, at a pace that starts at a second and
  slows while nothing changes (slurmctld serves every user of the cluster). A job Slurm has
  forgotten (MinJobAge) is looked up with `sacct` where the site keeps accounting, else judged
  by the step's manifest.
- Pending reasons and failures become one line each: `Slurm job 12 pending: waiting for
  upstream steps search (Dependency)`, `exit code 3 (Slurm job 12 FAILED on node07)`,
  `OUT_OF_MEMORY: ...; raise resources.memory`.
- Resume (`reattach`): a killed launcher's jobs stay in the queue; a new launcher follows the
  live ones by the job ids in run.json (handles carry the cache key they compute, so a job of
  an older version of a step is cancelled instead) and submits only the rest, after them.
- Cancel: `scancel`, then wait until the job has left the queue.

Construction takes the site config (`site=PATH`, else $ARCJOBS_SITE, else
~/.config/arcjobs/site.yaml; its `slurm:` section) and the launcher's data root. Slurm's
commands are found on PATH and find their cluster as they always do (SLURM_CONF, else
/etc/slurm/slurm.conf).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, TypedDict

from arcjobs import atomic
from arcjobs.backends import slurm_batch as sb
from arcjobs.backends.base import Backend, StepRequest, StepStatus, step_env
from arcjobs.backends.compose import _chown_tree, container_name, container_user
from arcjobs.backends.local import LocalBackend
from arcjobs.backends.site import SiteConfig, load_site, site_path
from arcjobs.errors import UserError
from arcjobs.images import docker as dk
from arcjobs.images import docker_tag
from arcjobs.images.apptainer import lookup, unconverted_sif
from arcjobs.layout import RunLayout
from arcjobs.manifest import is_complete
from arcjobs.spec.model import Resources, Step
from arcjobs.step_args import format_params

MOUNT = "/data"
HF_HOME = f"{MOUNT}/cache/huggingface"  # the same Hugging Face cache as compose.yaml's
CANCEL_WAIT_S = 60.0
POLL_MIN_S, POLL_MAX_S = 1.0, 10.0
MAX_QUERY_FAILURES = 10  # consecutive failed squeue calls before the launcher gives up
SQUEUE_FIELDS = ("JobID", "State", "Reason", "exit_code", "NodeList", "TimeLimit")

PENDING = {"PENDING", "CONFIGURING", "REQUEUED", "REQUEUE_FED", "REQUEUE_HOLD", "RESV_DEL_HOLD"}
RUNNING = {"RUNNING", "COMPLETING", "SIGNALING", "STAGE_OUT", "RESIZING", "SUSPENDED", "STOPPED"}
REASONS = {
    "Resources": "waiting for a node with the resources it asks",
    "Priority": "waiting behind higher-priority jobs",
    "BeginTime": "waiting for its begin time",
    "JobHeldUser": "held by its user (scontrol release)",
    "JobHeldAdmin": "held by an administrator",
    "PartitionDown": "its partition is down",
    "PartitionTimeLimit": "its time limit exceeds the partition's: lower `slurm.time`",
    "InvalidAccount": "its account is invalid: check `slurm.account`",
    "InvalidQOS": "its QOS is invalid: check `slurm.qos`",
}


class SlurmHandle(TypedDict):
    """A submitted step in run.json."""

    job_id: str
    key: str  # the cache key the job computes: reattach only to the same computation
    step_dir: str  # the launcher's path: the manifest says how a forgotten job ended
    needs: dict[str, str]  # needed step → its job id (named while waiting on them)
    memory_mb: int | None  # what --mem asked: named when the job runs out of memory


@dataclass(frozen=True)
class SlurmExtra:
    """A step as Slurm sees it (`StepRequest.extra`; `plan --json` shows `slurm.script`)."""

    slurm: sb.BatchJob
    needs: tuple[str, ...]
    runtime: str  # the site's slurm.runtime: apptainer, docker or none


@dataclass(frozen=True)
class JobRow:
    """One job as `squeue` (or `sacct`) reports it."""

    job_id: str
    state: str
    reason: str
    wait_status: int  # exit code << 8 | signal, as waitpid gives it
    nodes: str
    time_limit: str


class SlurmBackend(Backend[SlurmExtra, SlurmHandle]):
    name: ClassVar[str] = "slurm"
    whole_dag: ClassVar[bool] = True
    reattach: ClassVar[bool] = True
    options: ClassVar[tuple[str, ...]] = ("site",)

    def __init__(
        self, site: str | Path | SiteConfig | None = None, data_root: str | Path | None = None
    ) -> None:
        super().__init__(data_root)
        self.site = site if isinstance(site, SiteConfig) else load_site(site)
        self.slurm = self.site.slurm
        self.site.check_data_root(
            self.data_root,
            "the site config" if isinstance(site, SiteConfig) else site_path(site),
            "slurm",
        )
        self._image_ids: dict[str, str] = {}
        self._last: dict[str, StepStatus] = {}  # by job id: a resubmitted step has a new one
        self._interval = POLL_MIN_S
        self._failures = 0
        self._accounting: bool | None = None  # unknown until sacct is first needed

    @property
    def poll_interval_s(self) -> float:
        """1 s, growing by half up to 10 s while no job changes, back to 1 s when one does:
        every poll is an `squeue` that slurmctld answers for every user of the cluster."""
        return self._interval

    # --- where and what --------------------------------------------------------------------

    def data_mount(self, layout: RunLayout) -> str:
        """`/data` in containers; the data root's own path on the nodes without one."""
        if self.slurm.runtime == "none":
            return str(Path(layout.data_root).absolute())
        return MOUNT

    def image_cache(self, data_root: Path | None = None) -> Path:
        root = Path(data_root or self.data_root).absolute()
        return self.slurm.image_cache or self.site.images_dir(root)

    def image_id(self, image: str) -> str:
        """The identity in cache keys: the host's (as on the local backend) without a runtime,
        else the Docker digest of the image (of the one its .sif was built from)."""
        if image not in self._image_ids:
            tag = docker_tag(image)
            if self.slurm.runtime == "none":
                found: str | None = LocalBackend(self.data_root).image_id(image)
            elif self.slurm.runtime == "docker":
                found = dk.image_digest(tag)
            else:
                sif = lookup(self.image_cache(), image)
                found = sif.digest if sif else None
            missing = "unbuilt" if self.slurm.runtime == "docker" else "unconverted"
            self._image_ids[image] = found or f"{missing}:{tag}"
        return self._image_ids[image]

    def capacity(self) -> Resources:
        """A cluster, not a machine: Slurm places each job where it fits, so the engine's own
        limits are only the job language's maxima. Refuses, in one line, where sbatch is not."""
        _exe("sbatch")
        return Resources(gpus=16, cpus=512, memory_mb=None)

    # --- requests --------------------------------------------------------------------------

    def request(
        self,
        step: Step,
        params: dict[str, Any],
        layout: RunLayout,
        key: str,
        gpu_ids: list[int] | None = None,
    ) -> StepRequest[SlurmExtra]:
        """The step as a batch script (in `extra.slurm`); pure but for the image lookups.

        `gpu_ids` is ignored: Slurm gives the job its GPUs and sets CUDA_VISIBLE_DEVICES.
        """
        r, kind = step.resources, self.slurm.runtime
        cluster_root = Path(layout.data_root).absolute()  # the same path on every node
        cluster_dir = Path(layout.step_dir(step.name)).absolute()
        mount = self.data_mount(layout)
        command = [
            "arcjobs", "step", step.kind, *format_params(params),
            "--out", layout.seen_from(mount, layout.out_dir(step.name)),
        ]  # fmt: skip
        image_id = self.image_id(step.image)
        env = {
            "ARCJOBS_DATA_ROOT": mount,
            **step_env(key, image_id, r.gpus, r.cpus, r.memory_mb),
        }
        if kind != "none":  # as in compose.yaml: no user site, the shared model cache
            env |= {"PYTHONNOUSERSITE": "1", "HF_HOME": HF_HOME}
        env |= self.site.environment
        runtime, ready = self._runtime(step, layout, cluster_root, mount, image_id)
        name = sb.job_name(layout.run_id, step.name)
        options = sb.directives(
            name=name,
            log=cluster_dir / "log.txt",
            workdir=cluster_dir,
            resources=r,
            site=self.slurm,
        )
        text = sb.script(
            step=step.name,
            run_id=layout.run_id,
            options=options,
            command=command,
            env=env,
            rt=runtime,
            gpus=r.gpus,
            retries=step.retries,
            setup=self.slurm.setup,
        )
        job = sb.BatchJob(name, text, step.image, ready, r.memory_mb)
        return StepRequest(
            step=step.name,
            image=runtime.image or "host",
            command=command,
            env=env,
            mounts={} if kind == "none" else {str(cluster_root): MOUNT},
            workdir=str(cluster_dir),
            log=str(layout.log(step.name)),
            resources=r,
            extra=SlurmExtra(slurm=job, needs=step.needs, runtime=kind),
        )

    def _runtime(
        self, step: Step, layout: RunLayout, cluster_root: Path, mount: str, image_id: str
    ) -> tuple[sb.Runtime, bool]:
        """How the step starts on its node, and whether its image is there to start."""
        kind, r = self.slurm.runtime, step.resources
        sandbox = step.image == "sandbox"
        memory = f"{r.memory_mb}m" if r.memory_mb else (sb.SANDBOX_MEMORY if sandbox else None)
        common = {
            "kind": kind,
            "data_root": cluster_root,
            "mount": mount,
            "workdir": layout.seen_from(mount, layout.step_dir(step.name)),
            "sandbox": sandbox,
            "cpus": r.cpus,
            "memory": memory,
        }
        if kind == "none":
            return sb.Runtime(image="", **common), True
        if kind == "docker":
            uid, gid = container_user(layout.data_root.absolute())
            ready = image_id.startswith("sha256:")
            return sb.Runtime(
                image=image_id if ready else docker_tag(step.image),
                user=f"{uid}:{gid}",
                container=container_name(layout.data_root, layout.run_id, step.name),
                **common,
            ), ready
        cache = self.image_cache(layout.data_root)
        sif = lookup(cache, step.image)
        path = sif.path if sif else unconverted_sif(cache, step.image)
        return sb.Runtime(image=str(path), **common), sif is not None

    # --- what plan shows and run writes --------------------------------------------------------

    @staticmethod
    def _dir(layout: RunLayout) -> Path:
        return layout.run_dir / "slurm"

    def _files(
        self,
        requests: list[StepRequest[SlurmExtra]],
        order: list[sb.Submission],
        layout: RunLayout,
    ) -> dict[str, str]:
        files = {
            str(self._dir(layout) / sb.script_file(r.step)): r.extra.slurm.script for r in requests
        }
        submitted = [r.workdir for r, s in zip(requests, order, strict=True) if not s.done]
        files[str(self._dir(layout) / sb.SUBMIT_FILE)] = sb.submit_script(
            order, layout.run_id, submitted
        )
        return files

    def artefacts(
        self, requests: list[StepRequest[SlurmExtra]], layout: RunLayout
    ) -> dict[str, str]:
        """Every step's batch script and `submit.sh`, the submission order with its
        dependencies (steps already complete are shown there, not submitted)."""
        done = {
            r.step
            for r in requests
            if is_complete(layout.step_dir(r.step), r.env["ARCJOBS_CACHE_KEY"])
        }
        order = [
            sb.Submission(
                r.step,
                needs=tuple(n for n in r.extra.needs if n not in done),
                done=r.step in done,
            )
            for r in requests
        ]
        return self._files(requests, order, layout)

    # --- submitting --------------------------------------------------------------------------

    def submit(self, request: StepRequest[SlurmExtra]) -> SlurmHandle:
        raise NotImplementedError("the slurm backend submits whole DAGs (submit_dag)")

    def submit_dag(
        self,
        requests: dict[str, StepRequest[SlurmExtra]],
        needs: dict[str, list[str]],
        layout: RunLayout,
        live: Mapping[str, SlurmHandle] | None = None,
    ) -> dict[str, SlurmHandle]:
        """Write the scripts and submit.sh into runs/<id>/slurm/, then sbatch each step in
        order, after the jobs it needs: those submitted just before and the `live` ones a
        dead launcher left queued. A refused sbatch cancels what this call submitted."""
        live = live or {}
        missing = sorted(
            {r.extra.slurm.image for r in requests.values() if not r.extra.slurm.image_ready}
        )
        if missing:
            how = (
                f"build them first with `arcjobs images build {' '.join(missing)}`"
                if self.slurm.runtime == "docker"
                else f"convert them first with `arcjobs images apptainer` (cache: "
                f"{self.image_cache(layout.data_root)})"
            )
            raise UserError(f"image(s) {', '.join(missing)} not ready for Slurm; {how}")
        order = [
            sb.Submission(
                name,
                needs=tuple(n for n in needs.get(name, []) if n in requests),
                live=tuple(live[n]["job_id"] for n in needs.get(name, []) if n in live),
            )
            for name in requests
        ]
        for name, request in requests.items():
            self._prepare(layout, name, request)
        for path, text in self._files(list(requests.values()), order, layout).items():
            atomic.write_text(Path(path), text)
        ids: dict[str, str] = {}
        for sub in order:
            after = [ids[n] for n in sub.needs] + list(sub.live)
            argv = sb.submit_argv(sb.script_file(sub.step), after)
            try:
                proc = _run(argv, cwd=self._dir(layout))
            except UserError:
                self._cancel_ids(list(ids.values()))
                raise
            if proc.returncode != 0 or not proc.stdout.strip():
                self._cancel_ids(list(ids.values()))
                raise UserError(
                    f"sbatch of step {sub.step} failed (exit {proc.returncode}): "
                    f"{_one_line(proc.stderr or proc.stdout)}"
                    + (f"; cancelled the {len(ids)} job(s) submitted before it" if ids else "")
                )
            ids[sub.step] = proc.stdout.strip().split(";")[0]
        return {
            sub.step: SlurmHandle(
                job_id=ids[sub.step],
                key=requests[sub.step].env["ARCJOBS_CACHE_KEY"],
                step_dir=str(layout.step_dir(sub.step)),
                needs={n: ids[n] for n in sub.needs}
                | {n: live[n]["job_id"] for n in needs.get(sub.step, []) if n in live},
                memory_mb=requests[sub.step].extra.slurm.memory_mb,
            )
            for sub in order
        }

    def _prepare(self, layout: RunLayout, name: str, request: StepRequest[SlurmExtra]) -> None:
        """The step directory must exist before Slurm opens its log there. A root launcher
        hands it (and the shared cache) to the unprivileged uid a container runs as."""
        step_dir = layout.step_dir(name)
        step_dir.mkdir(parents=True, exist_ok=True)
        if request.extra.runtime != "docker" or os.getuid() != 0:
            return
        uid, gid = container_user(layout.data_root.absolute())
        if uid != 0:
            _chown_tree(step_dir, uid, gid, depth=64)
            cache = layout.data_root / "cache"
            cache.mkdir(exist_ok=True)
            _chown_tree(cache, uid, gid, depth=1)

    # --- following -----------------------------------------------------------------------------

    def poll(self, handles: Mapping[str, SlurmHandle]) -> dict[str, StepStatus]:
        """Every step's state from one `squeue` of all their jobs, which also sets the pace
        (`poll_interval_s`); a failed query answers with the last known states."""
        if not handles:
            return {}
        ids = {name: h["job_id"] for name, h in handles.items()}
        try:
            rows = self._query(set(ids.values()))
        except UserError as e:
            self._failures += 1
            if self._failures >= MAX_QUERY_FAILURES:
                raise
            unknown = StepStatus("queued", None, str(e))
            return {name: self._last.get(ids[name], unknown) for name in handles}
        self._failures = 0
        now = {ids[n]: _status(rows.get(ids[n]), h) for n, h in handles.items()}
        same = all(self._last.get(i) == st for i, st in now.items())
        self._interval = min(POLL_MAX_S, self._interval * 1.5) if same else POLL_MIN_S
        self._last |= now
        return {name: now[ids[name]] for name in handles}

    def _query(self, ids: set[str]) -> dict[str, JobRow]:
        """`squeue` for the jobs it still knows, `sacct` (where there is accounting) for the
        ones it has forgotten."""
        rows = _squeue(ids, every_state=True)
        forgotten = ids - rows.keys()
        return rows | self._sacct(forgotten) if forgotten else rows

    def _sacct(self, ids: set[str]) -> dict[str, JobRow]:
        if self._accounting is False or shutil.which("sacct") is None:
            return {}
        fields = "JobIDRaw,State,ExitCode,NodeList,Timelimit"
        proc = _run(["sacct", "--noheader", "--parsable2", "--allocations",
                     f"--jobs={','.join(sorted(ids))}", f"--format={fields}"])  # fmt: skip
        self._accounting = proc.returncode == 0
        return parse_sacct(proc.stdout) if self._accounting else {}

    def cancel(self, handle: SlurmHandle) -> None:
        """`scancel` the step's job and wait until it has left the queue (its dependants
        are then cancelled by Slurm: --kill-on-invalid-dep). Idempotent."""
        self._cancel_ids([handle["job_id"]])

    def _cancel_ids(self, ids: list[str]) -> None:
        if not ids:
            return
        proc = _run(["scancel", *ids])
        if proc.returncode != 0:
            raise UserError(f"scancel {' '.join(ids)} failed: {_one_line(proc.stderr)}")
        deadline = time.monotonic() + CANCEL_WAIT_S
        while time.monotonic() < deadline:
            if not _squeue(set(ids), every_state=False):  # queued, running or completing
                return
            time.sleep(0.5)
        raise UserError(
            f"Slurm job(s) {' '.join(ids)} still queued {CANCEL_WAIT_S:.0f} s after scancel"
        )


# --- what squeue and sacct say, as one line ------------------------------------------------------


def _squeue(ids: set[str], every_state: bool) -> dict[str, JobRow]:
    """The jobs `ids` squeue lists: in every state it still remembers (finished ones for
    MinJobAge), or only those still in the queue (pending, running, completing)."""
    argv = ["squeue", "--all", "--noheader", f"--jobs={','.join(sorted(ids))}"]
    argv += ["--states=all"] if every_state else []
    proc = _run([*argv, "--Format=" + ",".join(f"{f}:|" for f in SQUEUE_FIELDS)])
    if proc.returncode != 0 and "Invalid job id" not in proc.stderr:  # all of them forgotten
        raise UserError(f"squeue failed (exit {proc.returncode}): {_one_line(proc.stderr)}")
    return parse_squeue(proc.stdout)


def parse_squeue(text: str) -> dict[str, JobRow]:
    """Rows of `squeue --Format=<SQUEUE_FIELDS, each ending in |>`."""
    rows = {}
    for line in text.splitlines():
        cells = line.split("|")
        if len(cells) < len(SQUEUE_FIELDS):
            continue
        job_id, state, reason, code, nodes, limit = (c.strip() for c in cells[: len(SQUEUE_FIELDS)])
        rows[job_id] = JobRow(job_id, state, reason, _int(code), nodes, limit)
    return rows


def parse_sacct(text: str) -> dict[str, JobRow]:
    """Rows of `sacct --parsable2 --format=JobIDRaw,State,ExitCode,NodeList,Timelimit`;
    ExitCode is `code:signal`, State may read `CANCELLED by 1000`."""
    rows = {}
    for line in text.splitlines():
        cells = line.split("|")
        if len(cells) < 5:
            continue
        code, _, signal = cells[2].partition(":")
        state = cells[1].split()[0] if cells[1].strip() else "UNKNOWN"
        rows[cells[0]] = JobRow(
            cells[0], state, "", _int(code) << 8 | _int(signal), cells[3], cells[4]
        )
    return rows


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        return 0


def _status(row: JobRow | None, h: SlurmHandle) -> StepStatus:
    """The engine's view of one job, with one readable line."""
    job = f"Slurm job {h['job_id']}"
    if row is None:
        if is_complete(Path(h["step_dir"]), h["key"]):
            return StepStatus("exited", 0, f"{job} finished (Slurm no longer lists it)")
        return StepStatus(
            "lost", None, f"{job} is no longer listed by Slurm and left no complete output"
        )
    on = f" on {row.nodes}" if row.nodes and row.nodes != "(null)" else ""
    if row.reason == "DependencyNeverSatisfied":  # pending until Slurm cancels it: over
        return StepStatus("exited", None, f"never started: an upstream step failed ({job})")
    if row.state in PENDING:
        return StepStatus("queued", None, f"{job} pending: {_pending(row.reason, h)}")
    if row.state in RUNNING:
        return StepStatus("running", None, f"running as {job}{on}")
    if row.state == "COMPLETED":
        return StepStatus("exited", 0, f"{job} completed{on}")
    code, signal = row.wait_status >> 8, row.wait_status & 0x7F
    if row.state == "FAILED":
        if signal:
            return StepStatus("exited", None, f"killed by signal {signal} ({job} FAILED{on})")
        killed = f", signal {code - 128}" if code > 128 else ""
        return StepStatus("exited", code, f"exit code {code}{killed} ({job} FAILED{on})")
    if row.state == "TIMEOUT":
        return StepStatus(
            "exited",
            None,
            f"TIMEOUT: {job} reached its time limit ({row.time_limit}){on}; "
            "raise `slurm.time` in the site config",
        )
    if row.state == "OUT_OF_MEMORY":
        now = f" (now {h['memory_mb']} MB)" if h.get("memory_mb") else ""
        return StepStatus(
            "exited",
            None,
            f"OUT_OF_MEMORY: {job} used more memory than it asked{on}; "
            f"raise resources.memory of this step in the job file{now}",
        )
    if row.state == "NODE_FAIL":
        return StepStatus(
            "exited", None, f"NODE_FAIL: the node{on.replace(' on', '')} failed under {job}"
        )
    what = {"CANCELLED": "was cancelled (scancel)", "PREEMPTED": "was preempted"}.get(
        row.state, f"ended {row.state}"
    )
    return StepStatus("exited", None, f"{job} {what}{on}")


def _pending(reason: str, h: SlurmHandle) -> str:
    if reason == "Dependency":
        waiting = ", ".join(h.get("needs") or {}) or "the jobs it needs"
        return f"waiting for upstream steps {waiting} (Dependency)"
    if reason.startswith("ReqNodeNotAvail"):
        detail = reason.partition(",")[2].strip()
        return (
            "the nodes it needs are not available"
            + (f": {detail}" if detail else "")
            + " (ReqNodeNotAvail)"
        )
    if reason in ("", "None", "WaitingForScheduling"):
        return "waiting to be scheduled"
    return f"{REASONS[reason]} ({reason})" if reason in REASONS else reason


def _exe(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise UserError(
            f"{name} not found on PATH; run arcjobs where Slurm's commands are (a login node)"
        )
    return found


def _run(argv: list[str], cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(
            [_exe(argv[0]), *argv[1:]], cwd=cwd, capture_output=True, text=True, timeout=120
        )
    except subprocess.TimeoutExpired:
        raise UserError(
            f"{argv[0]} did not answer within 120 s (slurmctld busy or down?)"
        ) from None


def _one_line(error: object) -> str:
    return " ".join(str(error).split()) or type(error).__name__
