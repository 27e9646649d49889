"""The `compose` backend: each step is `docker compose run --rm -T` of its image's service.

The request's command is the whole Compose command line, so `arcjobs plan --backend compose`
prints exactly what `run` executes and a person can paste it (with the `env:` line, the
variables compose.yaml interpolates). The launcher runs that command as a host process whose
output goes to the step's log.txt and whose exit status is the container's.

Placement:
- the data root is bound at `/data` in every service (ARCJOBS_DATA_ROOT = the launcher's
  data root), so steps see their paths as `/data/runs/<run>/steps/<step>/out`;
- GPUs: `train`/`infer` reserve every GPU; the engine's GPU ids for the step become
  CUDA_VISIBLE_DEVICES inside, so concurrent steps never share one (ids index the launcher's
  own CUDA_VISIBLE_DEVICES when it has one, else nvidia-smi's list: `backends/gpus.py`). A
  GPU step whose image needs a newer NVIDIA driver than the machine's is refused before the
  run starts. Steps asking for no GPU use `train-cpu` / `infer-cpu`, the same services
  without a reservation, which works without NVIDIA's toolkit;
- CPUs and memory: `compose run` has no `--cpus`/`-m`, so compose.yaml reads ARCJOBS_CPUS,
  ARCJOBS_MEMORY (train/infer) and ARCJOBS_SANDBOX_MEMORY (sandbox) and the backend sets them
  per step from its resources.

Container user. The sandbox must not run as root, and what a step writes must be usable by
whoever owns the data. So the container runs as the launcher's uid:gid; a launcher running as
root (CI, `sudo`) uses the data root's owner, or, when that is root too, the images' own
unprivileged uid 10001 — and then, being root, it hands that uid the directories a step
writes: the step directory and the shared cache directory (`chown`, done in `submit`).

Identity. Every container is named from the data root, run and step (`arcjobs.<run>.<step>.
<hash>`) and labelled `arcjobs.run`, `arcjobs.step`, `arcjobs.key`, `arcjobs.data-root`. The
name is deterministic, so a container a killed launcher left behind is found without any
record: `reap` (on resume), `cancel` (also from another process) and every `submit` remove
it by name first (the docker SDK's `remove(force=True)`, as every engine call here other than
Compose's own). Containers outlive a SIGKILLed launcher (its Compose
client keeps writing their log until they end) — `arcjobs cancel RUN` or a resumed `run`
removes them; SIGINT/SIGTERM stop them with the launcher.

Settings (environment): ARCJOBS_COMPOSE (the Compose command, e.g. `docker-compose` for v1),
ARCJOBS_COMPOSE_FILE (compose.yaml; default the checkout's), ARCJOBS_COMPOSE_PROJECT (`-p`;
default `arcjobs`). See `arcjobs.images.docker` for how Compose is found.

Image identity is the engine's image id (`images.get(tag).id`): a rebuilt image changes
every cache key computed with it. Without an engine, planning still works (ids `unknown:`),
but running refuses in one line, as it does for an image that is not built (`unbuilt:`).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shlex
import signal
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, TypedDict

from arcjobs import __version__
from arcjobs.backends import gpus
from arcjobs.backends.base import Backend, StepRequest, StepStatus, step_env
from arcjobs.backends.local import _start_time
from arcjobs.errors import UserError
from arcjobs.images import docker as dk
from arcjobs.images import docker_tag
from arcjobs.layout import RunLayout
from arcjobs.spec.model import Resources, Step
from arcjobs.step_args import format_params

MOUNT = "/data"
IMAGE_UID = 10001  # the unprivileged user of every image (the Dockerfiles)
GPU_IMAGES = ("train", "infer")
STOP_GRACE_S = 10
REAP_WAIT_S = 30.0
LABEL = "arcjobs"
# The CUDA build of a GPU image (label set from Dockerfile.train/.infer's `ARG CUDA`); images
# built before the label existed are the default build.
CUDA_LABEL = "arcjobs.cuda"
DEFAULT_CUDA = "cu130"
# The oldest NVIDIA driver each CUDA major version runs on (NVIDIA's CUDA minor version
# compatibility: 12.x from 525.60.13, 13.x from 580.65.06).
MIN_DRIVER = {12: 525, 13: 580}


def container_name(data_root: Path, run_id: str, step: str) -> str:
    """Deterministic, valid for Docker, and unique per (data root, run, step): step names
    such as `learn.lora_rank=16` are sanitised, so a hash of the exact names is appended."""
    digest = hashlib.sha256(f"{Path(data_root).absolute()}\0{run_id}\0{step}".encode())
    clean = [re.sub(r"[^a-zA-Z0-9_.-]+", "_", s)[:60] for s in (run_id, step)]
    return f"arcjobs.{clean[0]}.{clean[1]}.{digest.hexdigest()[:10]}"


def container_user(data_root: Path) -> tuple[int, int]:
    """uid:gid a step's container runs as (see the module docstring)."""
    if os.getuid() != 0:
        return os.getuid(), os.getgid()
    try:
        st = Path(data_root).stat()
    except OSError:
        return IMAGE_UID, IMAGE_UID
    return (st.st_uid, st.st_gid) if st.st_uid != 0 else (IMAGE_UID, IMAGE_UID)


def _chown_tree(path: Path, uid: int, gid: int, depth: int) -> None:
    with contextlib.suppress(OSError):
        if path.lstat().st_uid != uid:
            os.chown(path, uid, gid, follow_symlinks=False)
    if depth > 0 and path.is_dir() and not path.is_symlink():
        for child in path.iterdir():
            _chown_tree(child, uid, gid, depth - 1)


@dataclass(frozen=True)
class ComposeExtra:
    """What `submit` needs beyond the command line (`StepRequest.extra`)."""

    container: str  # the deterministic container name (`container_name`)
    service: str  # compose.yaml's service: train, train-cpu, infer, infer-cpu or sandbox
    user: str  # uid:gid the container runs as (`container_user`)
    labels: dict[str, str]
    image_id: str  # `sha256:...` once built; `submit` refuses anything else
    run: str
    data_root: str


class ComposeHandle(TypedDict):
    """A step's container and the Compose client that runs it, in run.json."""

    container: str  # found by name, also by a process that did not start it
    pid: int  # the Compose client's process group
    start_time: str | None  # the client's, as in `LocalHandle`
    run: str


class ComposeBackend(Backend[ComposeExtra, ComposeHandle]):
    name: ClassVar[str] = "compose"
    options: ClassVar[tuple[str, ...]] = ("compose_file", "project")

    def __init__(
        self,
        data_root: str | Path | None = None,
        compose_file: str | Path | None = None,
        project: str | None = None,
    ) -> None:
        super().__init__(data_root)
        self.compose_file = dk.compose_file(compose_file)
        self.project = project
        self._procs: dict[int, subprocess.Popen[bytes]] = {}
        self._image_ids: dict[str, str] = {}
        self._gpus: gpus.Gpus | None = None
        self._driver: str | None = None

    # --- where and what --------------------------------------------------------------------

    def data_mount(self, layout: RunLayout) -> str:
        return MOUNT

    def image_id(self, image: str) -> str:
        if image not in self._image_ids:
            tag = docker_tag(image)
            if not dk.engine_reachable():
                self._image_ids[image] = f"unknown:{tag}"
            else:
                self._image_ids[image] = dk.image_digest(tag) or f"unbuilt:{tag}"
        return self._image_ids[image]

    def capacity(self) -> Resources:
        """The engine's machine. Called once before a run starts: the place to refuse, in one
        line, a run that cannot start (no Compose, no engine, no compose.yaml, unbuilt images)."""
        dk.compose_command()
        dk.require_file(self.compose_file)
        engine = dk.engine("start one (scripts/docker-up.sh) or use --backend local")
        missing = sorted(n for n, i in self._image_ids.items() if not i.startswith("sha256:"))
        if missing:
            raise UserError(
                f"image(s) {', '.join(map(docker_tag, missing))} not built; "
                f"run `arcjobs images build {' '.join(missing)}`"
            )
        return Resources(
            gpus=len(self._host_gpus().devices), cpus=engine.cpus, memory_mb=engine.memory_mb
        )

    def _host_gpus(self) -> gpus.Gpus:
        """The engine's GPUs, as the launcher sees them (the engine runs on this machine)."""
        if self._gpus is None:
            self._gpus = gpus.probe(dict(os.environ))
            self._driver = gpus.driver_version() if self._gpus.devices else None
        return self._gpus

    def gpu_refusal(self, step: Step, capacity: Resources) -> str | None:
        """Too few GPUs, MIG for a multi-GPU step, or a driver older than the step's image
        needs: the images bring their own CUDA libraries, so an old driver otherwise shows
        only inside a started container (the step then refuses, one line per step)."""
        refusal = self._host_gpus().refusal(step.resources.gpus, self.name)
        if refusal is not None or self._driver is None:
            return refusal
        cuda = dk.image_label(docker_tag(step.image), CUDA_LABEL) or DEFAULT_CUDA
        major = re.fullmatch(r"cu(\d+)\d", cuda)
        need = MIN_DRIVER.get(int(major[1])) if major else None
        if need is not None and int(self._driver.split(".")[0]) < need:
            return (
                f"image {docker_tag(step.image)} is built for CUDA {cuda}, which needs NVIDIA "
                f"driver >= {need}, but this machine's driver is {self._driver}; update the "
                f"driver or rebuild with `arcjobs images build {step.image} --build-arg "
                "CUDA=cu128`"
            )
        return None

    # --- requests --------------------------------------------------------------------------

    def compose_argv(self) -> list[str]:
        """`docker compose --project-directory D -f FILE -p P`: the same whatever the cwd."""
        base = list(dk.find_compose() or ("docker", "compose"))
        return [*base, *dk.project_argv(self.compose_file, self.project)]

    def request(
        self,
        step: Step,
        params: dict[str, Any],
        layout: RunLayout,
        key: str,
        gpu_ids: list[int] | None = None,
    ) -> StepRequest[ComposeExtra]:
        """The step as one `docker compose run` command line; pure but for cached probes."""
        r = step.resources
        data_root = layout.data_root.absolute()
        service = step.image if r.gpus or step.image not in GPU_IMAGES else f"{step.image}-cpu"
        uid, gid = container_user(data_root)
        name = container_name(data_root, layout.run_id, step.name)
        cuda = self._host_gpus().visible(gpu_ids) if gpu_ids else ""
        # Docker refuses a CPU limit beyond the machine: clamp, as the scheduler does.
        engine = dk.engine_or_none()
        cpus = min(r.cpus, engine.cpus if engine else os.cpu_count() or 1)
        memory_mb = min(r.memory_mb, engine.memory_mb) if r.memory_mb and engine else r.memory_mb
        inside = {
            **step_env(key, self.image_id(step.image), r.gpus, cpus, memory_mb),
            "CUDA_VISIBLE_DEVICES": cuda,
            **(gpus.STEP_ENV if r.gpus else {}),
        }
        labels = {
            f"{LABEL}.run": layout.run_id,
            f"{LABEL}.step": step.name,
            f"{LABEL}.key": key,
            f"{LABEL}.data-root": str(data_root),
        }
        memory = f"{memory_mb}m" if memory_mb else None
        outside = {
            "ARCJOBS_DATA_ROOT": str(data_root),
            "ARCJOBS_VERSION": __version__,
            "ARCJOBS_CPUS": str(cpus),
            "ARCJOBS_MEMORY": memory or "0",
        }
        if memory and step.image == "sandbox":
            outside["ARCJOBS_SANDBOX_MEMORY"] = memory
        out = layout.seen_from(MOUNT, layout.out_dir(step.name))
        command = [
            *self.compose_argv(),
            "run",
            "--rm",
            "-T",
            "--no-deps",
            "--name",
            name,
            "--user",
            f"{uid}:{gid}",
            *[a for k, v in labels.items() for a in ("-l", f"{k}={v}")],
            *[a for k, v in inside.items() for a in ("-e", f"{k}={v}")],
            service,
            "arcjobs",
            "step",
            step.kind,
            *format_params(params),
            "--out",
            out,
        ]
        return StepRequest(
            step=step.name,
            image=docker_tag(step.image),
            command=command,
            env=outside,
            mounts={str(data_root): MOUNT},
            workdir=str(layout.step_dir(step.name)),
            log=str(layout.log(step.name)),
            resources=r,
            extra=ComposeExtra(
                container=name,
                service=service,
                user=f"{uid}:{gid}",
                labels=labels,
                image_id=inside["ARCJOBS_IMAGE"],
                run=layout.run_id,
                data_root=str(data_root),
            ),
        )

    # --- acting ----------------------------------------------------------------------------

    def submit(self, request: StepRequest[ComposeExtra]) -> ComposeHandle:
        if not request.extra.image_id.startswith("sha256:"):
            raise UserError(
                f"image {request.image} is not built; run `arcjobs images build "
                f"{request.image.split(':')[0].removeprefix('arcjobs-')}`"
            )
        name = request.extra.container
        self._prepare(request)
        _remove(name)  # a leftover of a killed launcher would block the name
        with open(request.log, "ab") as log:
            log.write(
                f"== {time.strftime('%Y-%m-%d %H:%M:%S')} {shlex.join(request.command)}\n".encode()
            )
            log.flush()
            proc = subprocess.Popen(
                request.command,
                cwd=request.workdir,
                env={**os.environ, **request.env},
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self._procs[proc.pid] = proc
        return ComposeHandle(
            container=name, pid=proc.pid, start_time=_start_time(proc.pid), run=request.extra.run
        )

    def _prepare(self, request: StepRequest[ComposeExtra]) -> None:
        """Make the step directory (and, as root, give it and the shared cache to the
        container's uid)."""
        step_dir = Path(request.workdir)
        step_dir.mkdir(parents=True, exist_ok=True)
        uid, gid = (int(x) for x in request.extra.user.split(":"))
        if os.getuid() == 0 and uid != 0:
            _chown_tree(step_dir, uid, gid, depth=64)
            cache = Path(request.extra.data_root) / "cache"
            cache.mkdir(exist_ok=True)
            _chown_tree(cache, uid, gid, depth=1)

    def poll(self, handles: Mapping[str, ComposeHandle]) -> dict[str, StepStatus]:
        out: dict[str, StepStatus] = {}
        foreign: dict[str, ComposeHandle] = {}
        for step, handle in handles.items():
            proc = self._procs.get(handle["pid"])
            if proc is None:
                foreign[step] = handle
                continue
            code = proc.poll()
            out[step] = StepStatus("running") if code is None else StepStatus("exited", code)
        if foreign:  # started by another launcher process: ask the engine, once
            states = _container_states()
            for step, handle in foreign.items():
                state = states.get(handle["container"])
                out[step] = (
                    StepStatus("running")
                    if state in ("running", "created")
                    else (
                        StepStatus(
                            "lost", detail=f"container {handle['container']}: {state or 'gone'}"
                        )
                    )
                )
        return out

    def cancel(self, handle: ComposeHandle) -> None:
        """Stop the container (SIGTERM, SIGKILL after STOP_GRACE_S), remove it, and wait
        for its Compose client."""
        container = _container(handle["container"])
        if container is not None:
            with contextlib.suppress(*dk.api_errors()):  # gone meanwhile: nothing to stop
                container.stop(timeout=STOP_GRACE_S)
        self.reap(handle)

    def reap(self, handle: ComposeHandle) -> None:
        """Remove the container at once (its step starts again) and end the Compose client
        left writing its log. A client that had not yet created its container when the first
        `rm` ran creates it later: removal repeats until the client has gone."""
        name = handle["container"]
        proc = self._procs.pop(handle["pid"], None)
        ours = handle.get("start_time") and _start_time(handle["pid"]) == handle["start_time"]
        deadline = time.monotonic() + REAP_WAIT_S
        while True:
            _remove(name)
            alive = proc.poll() is None if proc is not None else bool(ours) and _alive(handle)
            if not alive:
                break
            if time.monotonic() > deadline:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(handle["pid"], signal.SIGKILL)
                _remove(name)
                break
            time.sleep(0.2)
        if proc is not None:
            proc.wait()


def _alive(handle: ComposeHandle) -> bool:
    return _start_time(handle["pid"]) == handle.get("start_time")


def _container(name: str) -> Any | None:
    """The engine's container `name`, or None (no such container, or no engine)."""
    try:
        return dk.client().containers.get(name)
    except dk.api_errors():  # NotFound, no engine: either way nothing to act on
        return None


def _remove(name: str) -> None:
    """`docker rm -f NAME`: best effort, as a container may be gone already."""
    container = _container(name)
    if container is not None:
        with contextlib.suppress(*dk.api_errors()):  # removed meanwhile
            container.remove(force=True)


def _container_states() -> dict[str, str]:
    """Name → state of every arcjobs container the engine has, in one call."""
    try:  # sparse: the list call alone, no inspection of each container
        listed = dk.client().containers.list(
            all=True, sparse=True, filters={"label": f"{LABEL}.run"}
        )
    except dk.api_errors():  # no engine: no state to report
        return {}
    return {c.attrs["Names"][0].lstrip("/"): c.attrs["State"] for c in listed}
