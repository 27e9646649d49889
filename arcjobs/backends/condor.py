"""The `condor` backend: a run becomes one DAGMan DAG of container-universe jobs on HTCondor.

Each step runs `arcjobs step ...` inside its image's `.sif` (from `arcjobs images apptainer`)
on whatever execute node HTCondor matches, seeing the shared data root at `/data`; DAGMan
owns dependencies and retries, so the whole run is handed over at once (`whole_dag`) and
keeps going if the launcher exits. The launcher then only follows the event logs; `status`,
`logs` and `cancel` work from run.json, the logs and the DAGMan job id in each step's handle,
from any machine that sees the data root (cancel: from one that can reach the schedd).

Construction takes the site config (`site=PATH`, else $ARCJOBS_SITE, else
~/.config/arcjobs/site.yaml) and the launcher's data root (`data_root=PATH`, else
$ARCJOBS_DATA_ROOT, else `data`), which must be the site's `data_root`, and exist, where
the site names one: every path in a submit file is read on the access point and on the
execute nodes alike (see `_check_data_root`).
`htcondor2` is imported when the backend is constructed, never when this module is, so
`arcjobs --help` and the other backends never load it.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal, TypedDict

from arcjobs.backends import condor_submit as cs
from arcjobs.backends.base import Backend, StepRequest, StepStatus, step_env
from arcjobs.backends.condor_events import (
    Follower,
    dagman_outcome,
    step_status,
    submit_failures,
)
from arcjobs.backends.site import SiteConfig, load_site, site_path
from arcjobs.errors import UserError
from arcjobs.images import docker_tag
from arcjobs.images.apptainer import lookup, unconverted_sif
from arcjobs.layout import RunLayout
from arcjobs.manifest import is_complete
from arcjobs.spec.model import Resources, Step
from arcjobs.step_args import format_params

MOUNT = "/data"
HF_HOME = f"{MOUNT}/cache/huggingface"  # the same Hugging Face cache as compose.yaml's
DEFAULT_MEMORY_PER_CPU_MB = 4096
DEFAULT_MEMORY_PER_GPU_MB = 48 * 1024  # room to load an 8B model in host memory per GPU
CANCEL_WAIT_S = 60.0
# htcondor2 25.x's Schedd.act keeps a reason only when given as (text, code) and sends none
# for a plain string (_schedd.py, `act`); the code is read by holds only.
REMOVE_REASON = ("arcjobs cancel", 0)


@dataclass(frozen=True)
class CondorExtra:
    """A step as DAGMan sees it (`StepRequest.extra`; `plan --json` shows `submit`)."""

    submit: dict[str, str]  # the submit description, command by command
    needs: tuple[str, ...]
    retries: int  # DAGMan RETRY: the step's own plus the site's
    memory_mb: int  # request_memory: named when a job is held for exceeding it
    image: str  # train, infer or sandbox
    image_ready: bool  # its .sif is in the image cache


class CondorHandle(TypedDict):
    """A step of a submitted DAG in run.json: enough to follow and remove it from anywhere
    that sees the data root (and, to remove it, reaches the schedd)."""

    dagman: int  # the DAGMan job's cluster id, shared by every step of the run
    schedd: str | None
    collector: str | None
    remove_with: Literal["condor_rm", "bindings"]
    dag: str
    dagman_log: str  # DAGMan's event log: says when nothing more will happen
    events: str  # the step's own job event log
    retries: int
    memory_mb: int


class CondorBackend(Backend[CondorExtra, CondorHandle]):
    name: ClassVar[str] = "condor"
    whole_dag: ClassVar[bool] = True
    options: ClassVar[tuple[str, ...]] = ("site",)

    def __init__(
        self, site: str | Path | SiteConfig | None = None, data_root: str | Path | None = None
    ) -> None:
        try:
            import htcondor2  # noqa: F401  (loaded here, by the backend's user, not at import)
        except ImportError:
            raise UserError(
                "the condor backend needs HTCondor's Python bindings: "
                "pip install 'arcjobs[cluster]'"
            ) from None
        super().__init__(data_root)
        self.site = site if isinstance(site, SiteConfig) else load_site(site)
        self._check_data_root(
            "the site config" if isinstance(site, SiteConfig) else site_path(site)
        )
        self._events = Follower()
        self._submit_failures: dict[tuple[str, int], dict[str, str]] = {}

    def _check_data_root(self, site_file: object) -> None:
        """Refuse a data root that cannot work on the pool, before anything is written.

        - One path on both sides: condor_submit checks on the access point that `initialdir`
          exists, the schedd writes `log` there, the launcher reads both; the execute node
          opens `output` and binds the data root at that same path.
        - Where the site names it, it must exist: HTCondor skips a bind source that does not
          exist without failing the job ("Skipping invalid singularity bind source
          directory", singularity.cpp), so a mistyped or unmounted path would leave /data
          empty in every step. (Without a site data_root the launcher creates its own.)
        """
        self.site.check_data_root(self.data_root, site_file, "condor")
        if self.site.data_root is not None and not self.data_root.is_dir():
            raise UserError(
                f"{site_file}: data_root {self.data_root} does not exist here; HTCondor would "
                f"silently skip binding it at {MOUNT} in every step: mount the shared "
                f"filesystem, or create it there (mkdir -p {self.data_root})"
            )

    # --- where and what --------------------------------------------------------------------

    def data_mount(self, layout: RunLayout) -> str:
        return MOUNT

    def image_cache(self, data_root: Path | None = None) -> Path:
        return self.site.images_dir(Path(data_root or self.data_root))

    def image_id(self, image: str) -> str:
        """The digest of the Docker image the .sif was built from (its config blob's: see
        arcjobs.images.apptainer), whichever way it was converted."""
        sif = lookup(self.image_cache(), image)
        return sif.digest if sif else f"unconverted:{docker_tag(image)}"

    def capacity(self) -> Resources:
        # A pool, not a machine: HTCondor matches each step to a slot that fits it, so the
        # engine's own limits are only the job language's maxima.
        return Resources(gpus=16, cpus=512, memory_mb=None)

    # --- requests --------------------------------------------------------------------------

    def request(
        self,
        step: Step,
        params: dict[str, Any],
        layout: RunLayout,
        key: str,
        gpu_ids: list[int] | None = None,
    ) -> StepRequest[CondorExtra]:
        """The step as a submit description (in `extra.submit`); pure.

        `gpu_ids` is ignored: HTCondor assigns GPUs and sets CUDA_VISIBLE_DEVICES itself, so
        a multi-GPU train step's `accelerate launch` sees exactly the GPUs it was given.
        """
        r = step.resources
        step_dir = layout.step_dir(step.name)
        out = layout.seen_from(MOUNT, layout.out_dir(step.name))
        command = ["arcjobs", "step", step.kind, *format_params(params), "--out", out]
        memory_mb = r.memory_mb or (
            DEFAULT_MEMORY_PER_CPU_MB * r.cpus + DEFAULT_MEMORY_PER_GPU_MB * r.gpus
        )
        cache = self.image_cache(layout.data_root)
        sif = lookup(cache, step.image)
        sif_path = sif.path if sif else unconverted_sif(cache, step.image)
        image_id = sif.digest if sif else f"unconverted:{docker_tag(step.image)}"
        env = {
            "PYTHONNOUSERSITE": "1",
            "HF_HOME": HF_HOME,
            "ARCJOBS_DATA_ROOT": MOUNT,
            **step_env(key, image_id, r.gpus, r.cpus, memory_mb),
            **self.site.environment,
        }
        desc = cs.submit_description(
            step=step.name,
            run_id=layout.run_id,
            image=step.image,
            sif=sif_path,
            command=command,
            env=env,
            step_dir=step_dir,
            data_root=layout.data_root,
            mount=MOUNT,
            resources=r,
            memory_mb=memory_mb,
            site=self.site,
        )
        return StepRequest(
            step=step.name,
            image=str(sif_path),
            command=command,
            env=env,
            mounts={str(layout.data_root): MOUNT},
            workdir=str(step_dir),
            log=str(layout.log(step.name)),
            resources=r,
            extra=CondorExtra(
                submit=desc,
                needs=step.needs,
                retries=step.retries + self.site.retries,
                memory_mb=memory_mb,
                image=step.image,
                image_ready=sif is not None,
            ),
        )

    def _nodes(
        self,
        requests: list[StepRequest[CondorExtra]],
        needs: dict[str, list[str]],
        layout: RunLayout,
    ) -> list[cs.Node]:
        nodes = []
        for req in requests:
            done = is_complete(layout.step_dir(req.step), req.env["ARCJOBS_CACHE_KEY"])
            head = cs.header(req.step, req.command)
            if not req.extra.image_ready:
                head += (
                    f"# image {req.extra.image} has no .sif in "
                    f"{Path(req.image).parent} yet: run `arcjobs images apptainer`\n"
                )
            nodes.append(
                cs.Node(
                    name=req.step,
                    desc=req.extra.submit,
                    needs=tuple(needs.get(req.step, req.extra.needs)),
                    retries=req.extra.retries,
                    done=done,
                    header=head,
                )
            )
        return nodes

    def artefacts(
        self, requests: list[StepRequest[CondorExtra]], layout: RunLayout
    ) -> dict[str, str]:
        """The DAG and every submit file `run` would write (steps already complete: DONE),
        parsed back with the bindings before they are shown."""
        nodes = self._nodes(requests, {}, layout)
        files = cs.render(nodes, self._dag_dir(layout), layout.run_id)
        cs.validate(files, nodes)
        return files

    # --- submitting --------------------------------------------------------------------------

    @staticmethod
    def _dag_dir(layout: RunLayout) -> Path:
        return layout.run_dir / "condor"

    def submit(self, request: StepRequest[CondorExtra]) -> CondorHandle:
        raise NotImplementedError("the condor backend submits whole DAGs (submit_dag)")

    def submit_dag(
        self,
        requests: dict[str, StepRequest[CondorExtra]],
        needs: dict[str, list[str]],
        layout: RunLayout,
    ) -> dict[str, CondorHandle]:
        """Write the DAG and its submit files into runs/<id>/condor/ and submit it once.

        The DAG holds exactly the steps to run (the engine decided from the manifests what is
        complete, which is what a rescue DAG would record), so it is submitted with `-force`:
        a rescue file left by an earlier submission of this run must not mark anything done.
        """
        missing = sorted({r.extra.image for r in requests.values() if not r.extra.image_ready})
        if missing:
            raise UserError(
                f"no .sif for image(s) {', '.join(missing)} in {self.image_cache(layout.data_root)}"
                "; convert them first with `arcjobs images apptainer`"
            )
        dag_dir = self._dag_dir(layout)
        nodes = self._nodes(list(requests.values()), needs, layout)
        files = cs.render(nodes, dag_dir, layout.run_id)
        cs.validate(files, nodes)
        for name in requests:
            layout.step_dir(name).mkdir(parents=True, exist_ok=True)
        cs.write_files(files)
        dag_file = dag_dir / cs.DAG_FILE
        if self.site.submit == "condor_submit_dag":
            cluster = self._submit_cli(dag_file, layout.run_id)
        else:
            cluster = self._submit_bindings(dag_file, layout.run_id)
        return {
            name: CondorHandle(
                dagman=cluster,
                schedd=self.site.schedd,
                collector=self.site.collector,
                remove_with="condor_rm" if self.site.submit == "condor_submit_dag" else "bindings",
                dag=str(dag_file),
                dagman_log=f"{dag_file}.dagman.log",
                events=str(layout.step_dir(name) / cs.EVENT_LOG),
                retries=req.extra.retries,
                memory_mb=req.extra.memory_mb,
            )
            for name, req in requests.items()
        }

    def _submit_bindings(self, dag_file: Path, run_id: str) -> int:
        import htcondor2

        try:
            sub = htcondor2.Submit.from_dag(str(dag_file), {"force": True, "batch-name": run_id})
            sub["initialdir"] = str(dag_file.parent)
            return int(_schedd(self.site.schedd, self.site.collector).submit(sub).cluster())
        except htcondor2.HTCondorException as e:
            raise UserError(f"DAG submission failed: {_one_line(e)}") from None

    def _submit_cli(self, dag_file: Path, run_id: str) -> int:
        cmd = [_exe("condor_submit_dag"), "-force", "-batch-name", run_id]
        if self.site.schedd:
            cmd += ["-r", self.site.schedd]
        cmd.append(dag_file.name)
        env = dict(os.environ)
        if self.site.collector:
            env["_CONDOR_COLLECTOR_HOST"] = self.site.collector
        proc = subprocess.run(cmd, cwd=dag_file.parent, capture_output=True, text=True, env=env)
        found = re.search(r"submitted to cluster (\d+)", proc.stdout)
        if proc.returncode != 0 or not found:
            raise UserError(
                f"condor_submit_dag failed (exit {proc.returncode}): "
                f"{_one_line(proc.stderr or proc.stdout)}"
            )
        return int(found.group(1))

    # --- following -----------------------------------------------------------------------------

    @property
    def poll_interval_s(self) -> float:
        """2 s: every poll reads one event log per step on the shared filesystem, and
        HTCondor's own events are seconds apart, so nothing that matters is seen late."""
        return 2.0

    def poll(self, handles: Mapping[str, CondorHandle]) -> dict[str, StepStatus]:
        """Every step's state from its event log; DAGMan's own log says when nothing more will
        happen (a step that never ran by then will not run)."""
        over: dict[tuple[str, int], str | None] = {}
        out = {}
        for name, h in handles.items():
            dkey = (h["dagman_log"], h["dagman"])
            if dkey not in over:
                over[dkey] = dagman_outcome(self._events.read(h["dagman_log"]), h["dagman"])
            failures = self._failed_submits(h) if over[dkey] else {}
            out[name] = step_status(
                self._events.read(h["events"]),
                after_cluster=h["dagman"],
                retries=h["retries"],
                dag_over=over[dkey],
                memory_mb=h.get("memory_mb"),
                submit_error=failures.get(cs.node_names([name])[name]),
            )
        return out

    def _failed_submits(self, handle: CondorHandle) -> dict[str, str]:
        """Why DAGMan could not submit nodes of a DAG that is over (read once: it is final).

        Such a node leaves no event in its step's log; DAGMan's debug log and stderr,
        beside the DAG, say why (condor_events.submit_failures).
        """
        key = (handle["dag"], handle["dagman"])
        if key not in self._submit_failures:
            texts = []
            for suffix in (".dagman.out", ".lib.err"):
                try:
                    texts.append(Path(handle["dag"] + suffix).read_text(errors="replace"))
                except OSError:
                    texts.append("")
            found = submit_failures(texts[0], texts[1], handle["dagman"])
            where = f" ({handle['dag']}.dagman.out)"
            self._submit_failures[key] = {node: why + where for node, why in found.items()}
        return self._submit_failures[key]

    def cancel(self, handle: CondorHandle) -> None:
        """Remove the run's DAGMan job (HTCondor then removes its node jobs) and wait for the
        removal to reach DAGMan's event log. Every step of a run shares that job, so the first
        call does the work and the others find it gone."""
        log = handle["dagman_log"]
        if dagman_outcome(self._events.read(log), handle["dagman"]) is not None:
            return
        if handle.get("remove_with") == "condor_rm":
            self._remove_cli(handle)
        else:
            self._remove_bindings(handle)
        deadline = time.monotonic() + CANCEL_WAIT_S
        while time.monotonic() < deadline:
            if dagman_outcome(self._events.read(log), handle["dagman"]) is not None:
                return
            time.sleep(0.5)

    def _remove_bindings(self, handle: CondorHandle) -> None:
        import htcondor2

        try:
            _schedd(handle.get("schedd"), handle.get("collector")).act(
                htcondor2.JobAction.Remove, str(handle["dagman"]), reason=REMOVE_REASON
            )
        except htcondor2.HTCondorException as e:
            raise UserError(f"condor_rm of DAG {handle['dagman']} failed: {_one_line(e)}") from None

    def _remove_cli(self, handle: CondorHandle) -> None:
        cmd = [_exe("condor_rm")]
        if schedd := handle.get("schedd"):
            cmd += ["-name", schedd]
        if collector := handle.get("collector"):
            cmd += ["-pool", collector]
        cmd.append(str(handle["dagman"]))
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            raise UserError(
                f"condor_rm {handle['dagman']} failed: {_one_line(proc.stderr or proc.stdout)}"
            )


def _schedd(name: str | None, collector: str | None) -> Any:
    """The schedd `name` (located through `collector`), or the local one."""
    import htcondor2

    try:
        if not name:
            return htcondor2.Schedd()
        pool = htcondor2.Collector(collector) if collector else htcondor2.Collector()
        return htcondor2.Schedd(pool.locate(htcondor2.DaemonType.Schedd, name))
    except htcondor2.HTCondorException as e:
        raise UserError(f"cannot reach {name or 'the local schedd'}: {_one_line(e)}") from None


def _exe(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise UserError(
            f"{name} not found on PATH; run arcjobs on an HTCondor access point, or set "
            "`submit: bindings` in the site config to use the Python bindings"
        )
    return found


def _one_line(error: object) -> str:
    return " ".join(str(error).split()) or type(error).__name__
