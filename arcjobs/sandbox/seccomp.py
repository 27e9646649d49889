"""seccomp: the system calls a program's process may not make, refused by the kernel.

Two classic-BPF filters, assembled once per worker. Once installed, a filter cannot be removed
or loosened by anything the process does (a later filter can only refuse more), and every
process forked after inherits it.

- `Filter.worker()`, installed by the worker on itself after its set-up, so that every child
  inherits it already compiled (installing a filter costs ~0.5 µs of kernel time per
  instruction, here ~0.2 ms for this one), refuses what no process of the sandbox needs:
  - sockets of every family (socket, socketpair): no network and no unix sockets;
  - device nodes and FIFOs (mknod, mknodat);
  - mounts and namespaces (mount, umount2, pivot_root, chroot, unshare, setns, the new mount
    API, statmount, listmount);
  - reaching another process's memory or descriptors: ptrace, process_vm_readv/writev,
    kcmp, process_madvise, process_mrelease, pidfd_getfd, pidfd_send_signal; fcntl's
    F_SETOWN, F_SETOWN_EX, F_SETSIG and F_NOTIFY (a signal delivered to a process it names);
  - kernel attack surface no program needs: bpf, perf_event_open, userfaultfd, io_uring_*,
    keyctl, add_key, request_key, personality, modify_ldt, uselib;
  - what only privilege could use, refused even for root: modules, kexec, reboot, swap,
    clocks, host and domain names, iopl/ioperm, accounting, quotas, syslog, vhangup,
    open_by_handle_at, name_to_handle_at, fanotify_init, lsm_set_self_attr;
  - metadata writes Landlock does not cover: chmod, chown, xattrs, utimes;
  - channels between programs of one uid: System V IPC and POSIX message queues;
  - other processes' scheduling: setpriority, sched_set*, ioprio_set, migrate_pages,
    move_pages.
- `Filter.child()`, installed by each child after fork, before the program is compiled,
  refuses what the worker itself needs and programs must not do:
  - new processes: fork, vfork, clone without CLONE_THREAD or with a namespace flag, execve,
    execveat; clone3 gets ENOSYS, so that libc falls back to clone for threads;
  - signals and limits of other processes: kill, tkill, tgkill, rt_(tg)sigqueueinfo,
    pidfd_open and prlimit64 unless aimed at the process itself (its pid is filled in by
    `Filter.for_pid`);
  - changing identity: set*id, setgroups, capset (the child drops its uid and capabilities
    before it installs this).

Refused calls fail with EPERM. A system call of another ABI (x32, or i386 on x86_64) kills the
process. The numbers are those of x86_64 and aarch64 (`tests/test_sandbox_seccomp.py` checks
them against the kernel headers); elsewhere `Filter.worker` raises `Unsupported`, and the
sandbox refuses to run unless told to go on without this layer.
"""

from __future__ import annotations

import ctypes
import errno
import os
import platform
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

PR_SET_SECCOMP, SECCOMP_MODE_FILTER = 22, 2
RET_KILL_PROCESS, RET_ERRNO, RET_ALLOW = 0x80000000, 0x00050000, 0x7FFF0000
# classic BPF opcodes (linux/filter.h)
LD_ABS_W, JEQ, JGE, JSET, RET = 0x20, 0x15, 0x35, 0x45, 0x06
# offsets in struct seccomp_data: nr, arch, then args[6] as u64 (low word first here)
NR, ARCH = 0, 4


def _arg_low(i: int) -> int:
    return 16 + 8 * i


CLONE_THREAD = 0x00010000
# CLONE_NEWNS, NEWCGROUP, NEWUTS, NEWIPC, NEWUSER, NEWPID, NEWNET
CLONE_NAMESPACES = (
    0x00020000 | 0x02000000 | 0x04000000 | 0x08000000 | 0x10000000 | 0x20000000 | 0x40000000
)
F_SETOWN, F_SETSIG, F_SETOWN_EX, F_NOTIFY = 8, 10, 15, 1026
X32_SYSCALL_BIT = 0x40000000

# Syscalls numbered 424 and up have one number on every architecture.
_COMMON = {
    "pidfd_send_signal": 424,
    "io_uring_setup": 425,
    "io_uring_enter": 426,
    "io_uring_register": 427,
    "open_tree": 428,
    "move_mount": 429,
    "fsopen": 430,
    "fsconfig": 431,
    "fsmount": 432,
    "fspick": 433,
    "pidfd_open": 434,
    "clone3": 435,
    "pidfd_getfd": 438,
    "process_madvise": 440,
    "mount_setattr": 442,
    "quotactl_fd": 443,
    "process_mrelease": 448,
    "fchmodat2": 452,
    "statmount": 457,
    "listmount": 458,
    "lsm_set_self_attr": 460,
    "setxattrat": 463,
    "removexattrat": 466,
    "open_tree_attr": 467,
}

_X86_64 = {
    "shmget": 29, "shmat": 30, "shmctl": 31, "socket": 41, "socketpair": 53, "clone": 56,
    "fork": 57, "vfork": 58, "execve": 59, "kill": 62, "semget": 64, "semop": 65,
    "semctl": 66, "shmdt": 67, "msgget": 68, "msgsnd": 69, "msgrcv": 70, "msgctl": 71,
    "fcntl": 72, "chmod": 90, "fchmod": 91, "chown": 92, "fchown": 93, "lchown": 94,
    "ptrace": 101, "syslog": 103, "setuid": 105, "setgid": 106, "setreuid": 113,
    "setregid": 114, "setgroups": 116, "setresuid": 117, "setresgid": 119, "setfsuid": 122,
    "setfsgid": 123, "capset": 126, "rt_sigqueueinfo": 129, "utime": 132, "mknod": 133,
    "uselib": 134, "personality": 135, "setpriority": 141, "sched_setparam": 142,
    "sched_setscheduler": 144, "vhangup": 153, "modify_ldt": 154, "pivot_root": 155,
    "adjtimex": 159, "chroot": 161, "acct": 163, "settimeofday": 164, "mount": 165,
    "umount2": 166, "swapon": 167, "swapoff": 168, "reboot": 169, "sethostname": 170,
    "setdomainname": 171, "iopl": 172, "ioperm": 173, "init_module": 175,
    "delete_module": 176, "quotactl": 179, "setxattr": 188, "lsetxattr": 189,
    "fsetxattr": 190, "removexattr": 197, "lremovexattr": 198, "fremovexattr": 199,
    "tkill": 200, "sched_setaffinity": 203, "lookup_dcookie": 212, "semtimedop": 220,
    "clock_settime": 227, "tgkill": 234, "utimes": 235, "mq_open": 240, "mq_unlink": 241,
    "mq_timedsend": 242, "mq_timedreceive": 243, "mq_notify": 244, "mq_getsetattr": 245,
    "kexec_load": 246, "add_key": 248, "request_key": 249, "keyctl": 250, "ioprio_set": 251,
    "migrate_pages": 256, "mknodat": 259, "fchownat": 260, "futimesat": 261,
    "fchmodat": 268, "unshare": 272, "move_pages": 279, "utimensat": 280,
    "rt_tgsigqueueinfo": 297, "perf_event_open": 298, "fanotify_init": 300, "prlimit64": 302,
    "name_to_handle_at": 303, "open_by_handle_at": 304, "clock_adjtime": 305, "setns": 308,
    "process_vm_readv": 310, "process_vm_writev": 311, "kcmp": 312, "finit_module": 313,
    "sched_setattr": 314, "kexec_file_load": 320, "bpf": 321, "execveat": 322,
    "userfaultfd": 323,
}  # fmt: skip

_AARCH64 = {
    "setxattr": 5, "lsetxattr": 6, "fsetxattr": 7, "removexattr": 14, "lremovexattr": 15,
    "fremovexattr": 16, "lookup_dcookie": 18, "fcntl": 25, "ioprio_set": 30, "mknodat": 33,
    "umount2": 39, "mount": 40, "pivot_root": 41, "chroot": 51, "fchmod": 52,
    "fchmodat": 53, "fchownat": 54, "fchown": 55, "vhangup": 58, "quotactl": 60,
    "utimensat": 88, "acct": 89, "capset": 91, "personality": 92, "unshare": 97,
    "kexec_load": 104, "init_module": 105, "delete_module": 106, "clock_settime": 112,
    "syslog": 116, "ptrace": 117, "sched_setparam": 118, "sched_setscheduler": 119,
    "sched_setaffinity": 122, "kill": 129, "tkill": 130, "tgkill": 131,
    "rt_sigqueueinfo": 138, "setpriority": 140, "reboot": 142, "setregid": 143,
    "setgid": 144, "setreuid": 145, "setuid": 146, "setresuid": 147, "setresgid": 149,
    "setfsuid": 151, "setfsgid": 152, "setgroups": 159, "sethostname": 161,
    "setdomainname": 162, "settimeofday": 170, "adjtimex": 171, "mq_open": 180,
    "mq_unlink": 181, "mq_timedsend": 182, "mq_timedreceive": 183, "mq_notify": 184,
    "mq_getsetattr": 185, "msgget": 186, "msgctl": 187, "msgrcv": 188, "msgsnd": 189,
    "semget": 190, "semctl": 191, "semtimedop": 192, "semop": 193, "shmget": 194,
    "shmctl": 195, "shmat": 196, "shmdt": 197, "socket": 198, "socketpair": 199,
    "add_key": 217, "request_key": 218, "keyctl": 219, "clone": 220, "execve": 221,
    "swapon": 224, "swapoff": 225, "migrate_pages": 238, "move_pages": 239,
    "rt_tgsigqueueinfo": 240, "perf_event_open": 241, "prlimit64": 261,
    "fanotify_init": 262, "name_to_handle_at": 264, "open_by_handle_at": 265,
    "clock_adjtime": 266, "setns": 268, "process_vm_readv": 270, "process_vm_writev": 271,
    "kcmp": 272, "finit_module": 273, "sched_setattr": 274, "bpf": 280, "execveat": 281,
    "userfaultfd": 282, "kexec_file_load": 294,
}  # fmt: skip

# AUDIT_ARCH_* of each supported machine, its own table, and whether it has an x32 ABI
ARCHES = {
    "x86_64": (0xC000003E, {**_X86_64, **_COMMON}, True),
    "aarch64": (0xC00000B7, {**_AARCH64, **_COMMON}, False),
}

# the child's filter: aimed at other processes only (checked by argument), and refused
SELF_ONLY = ("kill", "tkill", "tgkill", "rt_sigqueueinfo", "rt_tgsigqueueinfo", "pidfd_open")
CHILD_REFUSED = (
    "fork", "vfork", "execve", "execveat", "setuid", "setgid", "setreuid", "setregid",
    "setresuid", "setresgid", "setfsuid", "setfsgid", "setgroups", "capset",
)  # fmt: skip
CHILD_SPECIAL = (*SELF_ONLY, "prlimit64", "clone", "clone3")
# the worker's filter (fcntl is checked by argument)
WORKER_REFUSED = (
    # sockets, device nodes, mounts and namespaces
    "socket", "socketpair", "mknod", "mknodat", "mount", "umount2", "pivot_root", "chroot",
    "unshare", "setns", "open_tree", "move_mount", "fsopen", "fsconfig", "fsmount", "fspick",
    "mount_setattr", "statmount", "listmount", "open_tree_attr",
    # another process's memory or descriptors
    "ptrace", "process_vm_readv", "process_vm_writev", "kcmp", "process_madvise",
    "process_mrelease", "pidfd_getfd", "pidfd_send_signal",
    # kernel attack surface no program needs
    "bpf", "perf_event_open", "userfaultfd", "io_uring_setup", "io_uring_enter",
    "io_uring_register", "keyctl", "add_key", "request_key", "personality", "modify_ldt",
    "uselib",
    # what only privilege could use
    "init_module", "finit_module", "delete_module", "kexec_load", "kexec_file_load", "reboot",
    "swapon", "swapoff", "settimeofday", "clock_settime", "clock_adjtime", "adjtimex",
    "sethostname", "setdomainname", "iopl", "ioperm", "acct", "quotactl", "quotactl_fd",
    "syslog", "vhangup", "open_by_handle_at", "name_to_handle_at", "fanotify_init",
    "lookup_dcookie", "lsm_set_self_attr",
    # metadata writes Landlock does not cover
    "chmod", "fchmod", "fchmodat", "fchmodat2", "chown", "fchown", "lchown", "fchownat",
    "setxattr", "lsetxattr", "fsetxattr", "removexattr", "lremovexattr", "fremovexattr",
    "setxattrat", "removexattrat", "utime", "utimes", "utimensat", "futimesat",
    # channels between programs of one uid
    "shmget", "shmat", "shmctl", "shmdt", "semget", "semop", "semctl", "semtimedop", "msgget",
    "msgsnd", "msgrcv", "msgctl", "mq_open", "mq_unlink", "mq_timedsend", "mq_timedreceive",
    "mq_notify", "mq_getsetattr",
    # other processes' scheduling
    "setpriority", "sched_setparam", "sched_setscheduler", "sched_setattr",
    "sched_setaffinity", "ioprio_set", "migrate_pages", "move_pages",
)  # fmt: skip


class Unsupported(RuntimeError):
    """This machine's architecture (or kernel) cannot have the filter."""


@dataclass(frozen=True)
class Filter:
    """An assembled filter, as the pieces of its bytes between the constants that are the
    process's own pid: `for_pid` joins them in the child, where that pid is known (a join,
    because each Python operation a fresh child does costs it page faults)."""

    parts: tuple[bytes, ...]

    @classmethod
    def worker(cls, machine: str | None = None) -> Filter:
        """What no process of the sandbox needs: installed once, by the worker."""
        asm = _Assembler(machine)
        asm.jeq(asm.nr("fcntl"), "fcntl")
        for name in WORKER_REFUSED:
            asm.jeq(asm.nr(name), "eperm")
        asm.ret(RET_ALLOW)
        asm.label("fcntl")
        asm.load(_arg_low(1))
        for command in (F_SETOWN, F_SETSIG, F_SETOWN_EX, F_NOTIFY):
            asm.jeq(command, "eperm")
        asm.ret(RET_ALLOW)
        asm.label("eperm")
        asm.ret(RET_ERRNO | errno.EPERM)
        return asm.done()

    @classmethod
    def child(cls, machine: str | None = None) -> Filter:
        """What only the worker needs: processes, other processes' signals and limits, ids."""
        asm = _Assembler(machine)
        for name in SELF_ONLY:
            asm.jeq(asm.nr(name), "self")
        asm.jeq(asm.nr("prlimit64"), "prlimit")
        asm.jeq(asm.nr("clone"), "clone")
        asm.jeq(asm.nr("clone3"), "enosys")
        for name in CHILD_REFUSED:
            asm.jeq(asm.nr(name), "eperm")
        asm.ret(RET_ALLOW)
        asm.label("clone")  # threads only: CLONE_THREAD, and no namespace flag
        asm.load(_arg_low(0))
        asm.jset(CLONE_NAMESPACES, "eperm")
        asm.jset(CLONE_THREAD, "allow", "eperm")
        asm.label("prlimit")  # 0 is the caller itself
        asm.load(_arg_low(0))
        asm.jeq(0, "allow")
        asm.label("self")  # the low 32 bits of the first argument: the kernel reads a pid_t
        asm.load(_arg_low(0))
        asm.jeq_pid("allow", "eperm")
        asm.label("eperm")
        asm.ret(RET_ERRNO | errno.EPERM)
        asm.label("allow")
        asm.ret(RET_ALLOW)
        asm.label("enosys")  # libc then makes threads with clone
        asm.ret(RET_ERRNO | errno.ENOSYS)
        return asm.done()

    @classmethod
    def refusing(
        cls, errnos: Mapping[str | tuple[str, int], int], machine: str | None = None
    ) -> Filter:
        """A filter that refuses only the named syscalls, each with its errno (a key
        `(name, value)` only when the first argument is `value`): how the tests make a kernel
        without Landlock or seccomp, to see the sandbox refuse to run."""
        asm = _Assembler(machine)
        numbers = {**asm.numbers, "prctl": _PRCTL[machine or platform.machine()]}
        for i, key in enumerate(errnos):
            name, first = key if isinstance(key, tuple) else (key, None)
            asm.jeq(numbers[name], f"test{i}" if first is not None else f"refuse{i}")
        asm.ret(RET_ALLOW)
        for i, (key, number) in enumerate(errnos.items()):
            if isinstance(key, tuple):
                asm.label(f"test{i}")
                asm.load(_arg_low(0))
                asm.jeq(key[1], f"refuse{i}", "allow")
            asm.label(f"refuse{i}")
            asm.ret(RET_ERRNO | number)
        asm.label("allow")
        asm.ret(RET_ALLOW)
        return asm.done()

    def for_pid(self, pid: int) -> bytes:
        """The filter's bytes with the process's own pid in place."""
        return struct.pack("=I", pid).join(self.parts)

    def __len__(self) -> int:
        """Its number of instructions."""
        return (sum(map(len, self.parts)) + 4 * (len(self.parts) - 1)) // 8


# syscalls the filters let through, named here for `Filter.refusing` (landlock_* share the
# numbers of every architecture)
_LANDLOCK = {
    "landlock_create_ruleset": 444,
    "landlock_add_rule": 445,
    "landlock_restrict_self": 446,
}
_PRCTL = {"x86_64": 157, "aarch64": 167}


def _arch(machine: str | None) -> tuple[int, dict[str, int], bool]:
    machine = machine or platform.machine()
    if machine not in ARCHES:
        raise Unsupported(f"no seccomp filter for the {machine} architecture")
    return ARCHES[machine]


class _Assembler:
    """A filter's instructions in order, jumps by label (forward only, as BPF's are), after
    the prologue: a call of another ABI kills the process, then the syscall number is loaded
    for the tests that follow."""

    def __init__(self, machine: str | None) -> None:
        arch, table, has_x32 = _arch(machine)
        self.numbers = {**table, **_LANDLOCK}
        self.code: list[list] = []  # [op, jt, jf, k]: jt and jf an offset or a label
        self.labels: dict[str, int] = {}
        self.pid_at: list[int] = []  # instructions whose k is the process's own pid
        self.load(ARCH)
        self.jeq(arch, None, "kill")
        self.load(NR)
        if has_x32:
            self.emit(JGE, "kill", None, X32_SYSCALL_BIT)
        self.emit(JEQ, "start", "start", 0)  # skip the kill below
        self.label("kill")
        self.ret(RET_KILL_PROCESS)
        self.label("start")

    def nr(self, name: str) -> int | None:
        """The syscall's number here, or None for one this architecture lacks."""
        return self.numbers.get(name)

    def emit(self, op: int, jt: str | None, jf: str | None, k: int) -> None:
        self.code.append([op, jt, jf, k & 0xFFFFFFFF])

    def label(self, name: str) -> None:
        self.labels[name] = len(self.code)

    def load(self, offset: int) -> None:
        self.emit(LD_ABS_W, None, None, offset)

    def ret(self, value: int) -> None:
        self.emit(RET, None, None, value)

    def jeq(self, k: int | None, jt: str | None, jf: str | None = None) -> None:
        """Jump to `jt` if the accumulator is `k`, else to `jf` (None: the next instruction);
        nothing for a syscall this architecture lacks (`k` None)."""
        if k is not None:
            self.emit(JEQ, jt, jf, k)

    def jset(self, k: int, jt: str | None, jf: str | None = None) -> None:
        self.emit(JSET, jt, jf, k)

    def jeq_pid(self, jt: str, jf: str) -> None:
        """`jeq` with the process's own pid, filled in by `Filter.for_pid`."""
        self.pid_at.append(len(self.code) * 8)
        self.emit(JEQ, jt, jf, 0)

    def done(self) -> Filter:
        for i, insn in enumerate(self.code):
            for j in (1, 2):
                target = insn[j]
                offset = 0 if target is None else self.labels[target] - i - 1
                if not 0 <= offset <= 255:
                    raise Unsupported(f"seccomp filter jump to {target!r} out of range")
                insn[j] = offset
        code = b"".join(struct.pack("=HBBI", *insn) for insn in self.code)
        cuts = [0]
        for offset in self.pid_at:  # each pid is the last 4 bytes of its instruction
            cuts += [offset + 4, offset + 8]
        cuts.append(len(code))
        return Filter(tuple(code[a:b] for a, b in zip(cuts[::2], cuts[1::2], strict=True)))


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def install(code: bytes, libc: Any) -> None:
    """Install `code` (a `Filter.for_pid` result) on this process, which must have
    no_new_privs set; OSError if the kernel refuses."""
    Loadable(Filter((code,)), libc).install(0)


class Loadable:
    """A filter with every ctypes object its installation needs made in advance (by the
    worker), so that a fresh child installs it with one prctl after writing its pid in: each
    object a child makes or touches costs it page faults."""

    def __init__(self, filter: Filter, libc: Any) -> None:
        self.code = ctypes.create_string_buffer(filter.for_pid(0), 8 * len(filter))
        self.pid_at: list[int] = []
        offset = 0
        for part in filter.parts[:-1]:
            offset += len(part)
            self.pid_at.append(offset)
            offset += 4
        self.prog = _SockFprog(len(filter), ctypes.addressof(self.code))
        self.arg = ctypes.byref(self.prog)
        self.prctl = libc.prctl

    def install(self, pid: int) -> None:
        """Install it with `pid` as the process's own; OSError if the kernel refuses."""
        packed = struct.pack("=I", pid)
        for offset in self.pid_at:
            self.code[offset : offset + 4] = packed
        if self.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, self.arg, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), f"seccomp: {os.strerror(ctypes.get_errno())}")
