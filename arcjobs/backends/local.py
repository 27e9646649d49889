"""The `local` backend: steps run as host processes, each in its own process group.

No Docker is needed, so this is the embedded default (the demo and the tests use it). A
step's group is killed as a whole on cancel; the step also gets SIGTERM if the launcher
dies (PR_SET_PDEATHSIG), and a resumed launcher reaps any group a dead one left behind,
recognising it by pid and start time so that a recycled pid is never killed.

GPUs: the engine's numbers for a step index the launcher's own CUDA_VISIBLE_DEVICES, else
nvidia-smi's list (`backends/gpus.py`), so a launcher restricted to GPUs 2,3 hands out only
those; MIG instances count one each.

Interpreters: a step runs in the launcher's Python unless `$ARCJOBS_PYTHON_<IMAGE>` names
another for its image (`step_python`). The trainer and vLLM pin different transformers, which
is why they are two images; on a workstation they are two environments, e.g.
`ARCJOBS_PYTHON_INFER=.venv-vllm/bin/python arcjobs run jobs/demo.yaml --set
search.engine=vllm`. The interpreter is part of the image's identity, so cached outputs of
one environment are never reused for another.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar, TypedDict

from arcjobs import __version__
from arcjobs.backends import gpus
from arcjobs.backends.base import Backend, StepRequest, StepStatus, step_env
from arcjobs.errors import UserError
from arcjobs.layout import RunLayout
from arcjobs.spec.model import Resources, Step
from arcjobs.step_args import format_params

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """Run in the child before exec: SIGTERM when the launcher goes away."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def _start_time(pid: int) -> str | None:
    """The kernel's start time of `pid` (field 22 of /proc/pid/stat), or None if gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


def step_python(image: str) -> str:
    """The interpreter that runs `image`'s steps: `$ARCJOBS_PYTHON_<IMAGE>`, else the launcher's.

    The path is made absolute but not resolved: a venv's `bin/python` is a symlink to the base
    interpreter, and resolving it would leave the venv behind.
    """
    name = "ARCJOBS_PYTHON_" + image.upper().replace("-", "_")
    value = os.environ.get(name)
    if not value:
        return sys.executable
    path = os.path.abspath(os.path.expanduser(value))
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        raise UserError(f"{name}={value}: not an executable Python interpreter")
    return path


def _memory_mb() -> int:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2**20


class LocalHandle(TypedDict):
    """A step's process group in run.json."""

    pid: int  # the group's leader, and so the group's id
    start_time: str | None  # the kernel's: tells the step from a later process with its pid


class LocalBackend(Backend[None, LocalHandle]):
    """Requests carry no extra: the command line, environment and directory say it all."""

    name: ClassVar[str] = "local"

    def __init__(self, data_root: str | Path | None = None) -> None:
        super().__init__(data_root)
        self._procs: dict[int, subprocess.Popen[bytes]] = {}
        self._gpus: gpus.Gpus | None = None

    def _host_gpus(self) -> gpus.Gpus:
        if self._gpus is None:
            self._gpus = gpus.probe(dict(os.environ))
        return self._gpus

    def data_mount(self, layout: RunLayout) -> str:
        return str(layout.data_root)

    def image_id(self, image: str) -> str:
        # An image is a host environment here: the arcjobs and Python versions stand for the
        # launcher's own, the interpreter's path for another one.
        python = step_python(image)
        if python != sys.executable:
            return f"host:{python}:arcjobs-{__version__}"
        return f"host:arcjobs-{__version__}:python-{sys.version_info[0]}.{sys.version_info[1]}"

    def capacity(self) -> Resources:
        return Resources(
            gpus=len(self._host_gpus().devices), cpus=os.cpu_count() or 1, memory_mb=_memory_mb()
        )

    def gpu_refusal(self, step: Step, capacity: Resources) -> str | None:
        return self._host_gpus().refusal(step.resources.gpus, self.name)

    def request(
        self,
        step: Step,
        params: dict[str, Any],
        layout: RunLayout,
        key: str,
        gpu_ids: list[int] | None = None,
    ) -> StepRequest[None]:
        r = step.resources
        env = {
            **step_env(key, self.image_id(step.image), r.gpus, r.cpus, r.memory_mb),
            "CUDA_VISIBLE_DEVICES": self._host_gpus().visible(gpu_ids),
            **(gpus.STEP_ENV if r.gpus else {}),
        }
        out = layout.out_dir(step.name)
        command = [step_python(step.image), "-m", "arcjobs", "step", step.kind]
        command += [*format_params(params), "--out", str(out)]
        return StepRequest(
            step=step.name,
            image="host",
            command=command,
            env=env,
            mounts={},
            workdir=str(layout.step_dir(step.name)),
            log=str(layout.log(step.name)),
            resources=r,
            extra=None,
        )

    def submit(self, request: StepRequest[None]) -> LocalHandle:
        Path(request.workdir).mkdir(parents=True, exist_ok=True)
        with open(request.log, "ab") as log:
            log.write(
                f"== {time.strftime('%Y-%m-%d %H:%M:%S')} {' '.join(request.command)}\n".encode()
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
                preexec_fn=_die_with_parent,
            )
        self._procs[proc.pid] = proc
        return LocalHandle(pid=proc.pid, start_time=_start_time(proc.pid))

    def poll(self, handles: Mapping[str, LocalHandle]) -> dict[str, StepStatus]:
        out = {}
        for step, handle in handles.items():
            proc = self._procs.get(handle["pid"])
            if proc is not None:
                code = proc.poll()
                out[step] = StepStatus("running") if code is None else StepStatus("exited", code)
            elif _start_time(handle["pid"]) == handle.get("start_time"):
                out[step] = StepStatus("running")
            else:
                out[step] = StepStatus("lost")
        return out

    def cancel(self, handle: LocalHandle) -> None:
        pid = handle["pid"]
        proc = self._procs.pop(pid, None)
        if proc is None and _start_time(pid) != handle.get("start_time"):
            return  # long gone, and the pid may belong to someone else now
        for sig, wait in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(pid, sig)
            except ProcessLookupError:
                break
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline:
                if proc is not None and proc.poll() is not None and not _group_alive(pid):
                    return
                if proc is None and not _group_alive(pid):
                    return
                time.sleep(0.05)
        if proc is not None:
            proc.wait()


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
