"""Resource limits of one program, and how a program's process applies them to itself.

The limits are set in the forked child before the program's source is even compiled, with
hard limits equal to soft ones (a program cannot raise them back), so they hold however the
program behaves. Memory is counted on top of what the pre-warmed worker already maps (numpy,
scipy and the DSL), so `memory_mb` means "what the program may allocate", independent of
how heavy the imports happen to be on a given machine.
"""

from __future__ import annotations

import math
import resource
from dataclasses import asdict, dataclass
from typing import Any

NOBODY = 65534  # the uid/gid programs run as when the worker is root
# descriptors a program's process may hold: its five, and what imports open for a moment
MAX_OPEN_FILES = 64


@dataclass(frozen=True)
class Limits:
    """What one program may use; part of the result cache key.

    timeout_s: wall-clock seconds for the whole program (all train and test inputs), also
        enforced as CPU time (RLIMIT_CPU) rounded up to whole seconds.
    memory_mb: address space the program may add to the warmed worker's.
    max_procs: RLIMIT_NPROC (processes and threads of the program's uid).
    file_mb: largest file the program's process may write (Landlock lets it write none;
        this holds where a run goes on without Landlock).
    max_source_bytes: longer sources are refused without running (a completion is ~4 KB).
    """

    timeout_s: float = 2.0
    memory_mb: int = 1024
    max_procs: int = 64
    file_mb: int = 16
    max_source_bytes: int = 1_000_000

    def __post_init__(self) -> None:
        if not self.timeout_s > 0:
            raise ValueError(f"timeout_s must be > 0, got {self.timeout_s}")
        if self.memory_mb < 16:
            raise ValueError(f"memory_mb must be >= 16, got {self.memory_mb}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def vm_size_bytes() -> int:
    """This process's current virtual size, the base the memory limit is added to."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    return 0


def cpu_seconds(timeout_s: float) -> int:
    """RLIMIT_CPU granularity is whole seconds: the time limit, rounded up."""
    return max(1, math.ceil(timeout_s))


def apply(limits: Limits, base_vm: int) -> None:
    """Set every rlimit on the calling process, never above an existing hard limit (a
    container may already impose a lower one: that lower one then stays). Hard limits are
    the soft ones, but for CPU time: SIGXCPU at the soft limit, SIGKILL a second later."""
    cpu = cpu_seconds(limits.timeout_s)
    memory = base_vm + limits.memory_mb * 1024 * 1024
    wanted = {
        resource.RLIMIT_CPU: (cpu, cpu + 1),
        resource.RLIMIT_AS: (memory, memory),
        resource.RLIMIT_DATA: (memory, memory),
        resource.RLIMIT_FSIZE: (limits.file_mb * 1024 * 1024,) * 2,
        resource.RLIMIT_NOFILE: (MAX_OPEN_FILES, MAX_OPEN_FILES),
        resource.RLIMIT_NPROC: (limits.max_procs, limits.max_procs),
        resource.RLIMIT_CORE: (0, 0),
    }
    for which, (soft, hard) in wanted.items():
        current = resource.getrlimit(which)[1]
        if current != resource.RLIM_INFINITY:
            soft, hard = min(soft, current), min(hard, current)
        resource.setrlimit(which, (soft, hard))
