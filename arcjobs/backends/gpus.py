"""The GPUs a launcher may hand out, and how a step's share is named to CUDA.

Shared by the local and compose backends: both number the GPUs they hand out 0..n-1 and
turn a step's numbers into its CUDA_VISIBLE_DEVICES.

- The launcher's own CUDA_VISIBLE_DEVICES, when set, is the list: number 1 of `2,3` is `3`,
  as a person restricting the launcher to GPUs 2 and 3 means.
- Else `nvidia-smi -L`, which lists GPUs in PCI bus order. CUDA numbers them fastest-first
  unless CUDA_DEVICE_ORDER=PCI_BUS_ID, so every GPU step gets that variable (STEP_ENV) and
  index i means the same GPU to nvidia-smi, the launcher and the step.
- MIG: a GPU split into MIG instances is listed with them; CUDA only reaches an instance by
  its UUID and uses one instance per process. Each instance then counts as a GPU, every
  device is named by UUID, and a step asking more than one is refused (`refusal`).

No torch here: the launcher side never imports it.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass

STEP_ENV = {"CUDA_DEVICE_ORDER": "PCI_BUS_ID"}

_GPU_LINE = re.compile(r"^GPU (\d+): .*\(UUID: (GPU-[^)\s]+)\)")
_MIG_LINE = re.compile(r"^\s+MIG .*\(UUID: (MIG-[^)\s]+)\)")


@dataclass(frozen=True)
class Gpus:
    """What CUDA_VISIBLE_DEVICES may name, in hand-out order, and whether they are MIG instances."""

    devices: tuple[str, ...] = ()
    mig: bool = False

    def visible(self, gpu_ids: list[int] | None) -> str:
        """CUDA_VISIBLE_DEVICES for the numbers the engine handed a step ("" hides every GPU).

        A number beyond the list (planning for another machine) is written as itself."""
        return ",".join(self.devices[i] if i < len(self.devices) else str(i) for i in gpu_ids or [])

    def refusal(self, wanted: int, backend: str) -> str | None:
        """Why a step asking `wanted` GPUs cannot run here, or None."""
        if wanted > len(self.devices):
            return too_few(len(self.devices), backend)
        if wanted > 1 and self.mig:
            return (
                f"the {backend} backend's GPUs here are MIG instances, of which CUDA uses one "
                "per process; give it gpus: 1, or disable MIG for multi-GPU steps"
            )
        return None


def too_few(have: int, backend: str) -> str:
    """The end of "step X asks for N GPU(s) and ..." when the backend has fewer."""
    return (
        f"the {backend} backend has {have} here; lower it (e.g. --set gpus=0 where the job "
        "has that parameter) or use a backend with GPUs"
    )


def parse_listing(text: str) -> Gpus:
    """`nvidia-smi -L` output → the devices, by index, or by UUID where any GPU has MIG on."""
    listed: list[tuple[str, str, list[str]]] = []  # (index, GPU uuid, its MIG uuids)
    for line in text.splitlines():
        if gpu := _GPU_LINE.match(line):
            listed.append((gpu[1], gpu[2], []))
        elif (mig := _MIG_LINE.match(line)) and listed:
            listed[-1][2].append(mig[1])
    if any(migs for _, _, migs in listed):
        return Gpus(tuple(d for _, uuid, migs in listed for d in (migs or [uuid])), mig=True)
    return Gpus(tuple(index for index, _, _ in listed))


def from_visible(value: str) -> Gpus:
    """The launcher's own CUDA_VISIBLE_DEVICES as the list (`-1` and blanks hide, as in CUDA)."""
    devices = tuple(d.strip() for d in value.split(",") if d.strip() and d.strip() != "-1")
    return Gpus(devices, mig=any(d.startswith("MIG-") for d in devices))


def nvidia_smi(*args: str) -> str | None:
    """stdout of `nvidia-smi ARGS`, or None where there is none or it fails."""
    if shutil.which("nvidia-smi") is None:
        return None
    try:
        done = subprocess.run(["nvidia-smi", *args], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout if done.returncode == 0 else None


def probe(environ: dict[str, str]) -> Gpus:
    """The GPUs this launcher may hand out (see the module docstring)."""
    if "CUDA_VISIBLE_DEVICES" in environ:
        return from_visible(environ["CUDA_VISIBLE_DEVICES"])
    return parse_listing(nvidia_smi("-L") or "")


def driver_version() -> str | None:
    """The NVIDIA driver's version (`580.65.06`), or None without nvidia-smi (or a number)."""
    out = nvidia_smi("--query-gpu=driver_version", "--format=csv,noheader")
    versions = re.findall(r"^\s*(\d+\.[\d.]+)\s*$", out or "", re.MULTILINE)
    return versions[0] if versions else None
