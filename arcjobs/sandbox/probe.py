"""Which layers are in force: tried from inside a locked-down child, not assumed.

A worker forks one probe child when it starts. The child locks itself down exactly as every
program's child does (`arcjobs.sandbox.child.lock_down`), then attempts what each kernel layer
must refuse, and reports what it saw. The worker passes the report on in its hello; the pool
refuses to run programs when a required layer is not in force (unless the run opted out), and
`arcjobs sandbox check` prints it.

The attempts are harmless where a layer is missing: listing `/`, reading this process's own
/proc status, making a socket (closed at once) and sending signal 0 (no signal, only the
permission check) to the worker.
"""

from __future__ import annotations

import os
import socket
from typing import Any

from arcjobs.sandbox import child
from arcjobs.sandbox.isolation import NoCapabilities
from arcjobs.sandbox.protocol import encode, write_raw

REQUIRED = ("no_new_privs", "seccomp", "landlock")
PR_GET_NO_NEW_PRIVS = 39


def serve(ctx: child.Context) -> None:
    """The probe child's whole life: lock down (putting up every layer it can: `ctx` does
    not require them), try, report on REPORT_FD, exit."""
    child.prepare(ctx)
    layers = child.lock_down(ctx)
    layers.update(attempts(ctx.libc))
    write_raw(child.REPORT_FD, encode({"probe": layers}))
    os._exit(0)


def attempts(libc: Any) -> dict[str, bool]:
    """Whether each layer refused what it must (True) or let it through (False)."""
    return {
        "no_new_privs": libc is not None and libc.prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) == 1,
        "seccomp": _refused(_make_socket) and _refused(lambda: os.kill(os.getppid(), 0)),
        "landlock": _refused(lambda: os.listdir("/"))
        and _refused(lambda: open("/proc/self/status", "rb").close()),  # noqa: SIM115
        "no_capabilities": libc is not None and NoCapabilities(libc).none_left(),
    }


def _make_socket() -> None:
    socket.socket().close()


def _refused(attempt: Any) -> bool:
    try:
        attempt()
    except PermissionError:
        return True
    except OSError:
        return False
    return False


def missing(layers: dict[str, Any]) -> list[str]:
    """The required layers a probe report says are not in force."""
    return [name for name in REQUIRED if not layers.get(name)]
