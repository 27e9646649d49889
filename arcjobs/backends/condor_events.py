"""Follow HTCondor job event logs with `htcondor2.JobEventLog` and say what each step is doing.

Progress comes from the event logs the schedd writes (one per step, plus DAGMan's own), never
from `condor_q` text: the logs are the scheduler's durable record, they survive a restart of
the launcher, and reading them needs no daemon at all — `arcjobs status` on a login node sees
what the launcher would. Each DAGMan retry of a node is a new job (a new cluster id) in the
same step log, so the events are grouped into attempts by cluster; clusters older than the
run's current DAGMan job belong to an earlier submission of the run and are ignored.

A log that is still being written is fine: `JobEventLog.events(stop_after=0)` returns the
complete events and picks up a half-written one on the next poll. `Follower` keeps one open
reader per file so that a long run does not re-parse its logs on every poll.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from arcjobs.backends.base import StepStatus
from arcjobs.backends.condor_submit import NO_RETRY_EXIT
from arcjobs.errors import UserError

MEMORY_HOLD_CODE = 34  # HoldReasonCode: the job used more memory than it requested

State = Literal["idle", "running", "held", "succeeded", "failed", "removed"]


@dataclass
class Attempt:
    """One job of a step (one DAGMan try), folded from its events in log order."""

    cluster: int
    state: State = "idle"
    exit_code: int | None = None
    signal: int | None = None
    host: str = ""
    submitted: float | None = None  # when the schedd queued it (epoch seconds)
    hold_reason: str = ""
    hold_code: int | None = None
    note: str = ""  # the latest eviction / shadow exception / removal reason

    @property
    def failed(self) -> bool:
        return self.state in ("failed", "removed")


@dataclass
class StepLog:
    attempts: dict[int, Attempt] = field(default_factory=dict)


def _host(address: str) -> str:
    """`<10.0.0.7:9618?addrs=...&alias=gpu07.example.org>` → `gpu07.example.org`."""
    m = re.search(r"alias=([^&>]+)", address)
    return m.group(1) if m else address.strip("<>").split("?")[0]


def apply(log: StepLog, event: Any) -> None:
    """Fold one `htcondor2.JobEvent` into the attempt of its cluster."""
    from htcondor2 import JobEventType as T

    a = log.attempts.setdefault(event.cluster, Attempt(event.cluster))
    kind = event.type
    if kind == T.SUBMIT:
        a.state, a.submitted = "idle", event.timestamp
    elif kind == T.EXECUTE:
        a.state, a.host = "running", _host(event.get("ExecuteHost", ""))
    elif kind == T.JOB_EVICTED:
        a.state, a.note = "idle", f"evicted from {a.host or 'its machine'}, requeued"
    elif kind == T.JOB_HELD:
        a.state = "held"
        a.hold_reason = str(event.get("HoldReason", "")).strip()
        a.hold_code = event.get("HoldReasonCode")
    elif kind == T.JOB_RELEASED:
        a.state, a.hold_reason, a.hold_code = "idle", "", None
    elif kind == T.SHADOW_EXCEPTION or kind == T.JOB_RECONNECT_FAILED:
        # The shadow is gone either way; the schedd marks a running job idle again
        # (schedd.cpp, `_mark_job_stopped`) and matches it anew. A hold, if it comes,
        # is its own event.
        why = event.get("Message") or event.get("Reason") or ""
        what = "shadow exception" if kind == T.SHADOW_EXCEPTION else "reconnect failed"
        where = f" on {a.host}" if a.host else ""
        a.state = "idle" if a.state == "running" else a.state
        a.note = f"{what}{where}: {str(why).strip()}; requeued"
    elif kind == T.JOB_TERMINATED:
        if event.get("TerminatedNormally", True):
            a.exit_code = int(event.get("ReturnValue", 0))
            a.state = "succeeded" if a.exit_code == 0 else "failed"
        else:
            a.state, a.signal = "failed", event.get("TerminatedBySignal")
    elif kind == T.JOB_ABORTED:
        a.state, a.note = "removed", str(event.get("Reason", "")).strip()


class Follower:
    """Incremental readers of event logs, one per file, kept between polls.

    A read error (a log damaged by a full disk, or written by something else) starts that
    file over on the next poll; only when it persists is it reported, as one line.
    """

    MAX_READ_ERRORS = 5

    def __init__(self) -> None:
        self._readers: dict[str, Any] = {}
        self._logs: dict[str, StepLog] = {}
        self._errors: dict[str, int] = {}

    def read(self, path: str | Path) -> StepLog:
        """Everything the log at `path` says so far (empty while the file does not exist)."""
        import htcondor2

        key = str(path)
        log = self._logs.setdefault(key, StepLog())
        try:
            if key not in self._readers:
                if not Path(key).exists():
                    return log
                self._readers[key] = htcondor2.JobEventLog(key)
            for event in self._readers[key].events(stop_after=0):
                apply(log, event)
        except htcondor2.HTCondorException as e:
            self._readers.pop(key, None)
            self._logs[key] = StepLog()
            self._errors[key] = self._errors.get(key, 0) + 1
            if self._errors[key] >= self.MAX_READ_ERRORS:
                raise UserError(f"cannot read HTCondor event log {key}: {e}") from None
            return log
        self._errors.pop(key, None)
        return log


def dagman_outcome(log: StepLog, cluster: int) -> str | None:
    """Why the DAGMan job `cluster` is over, from its own event log; None while it runs."""
    a = log.attempts.get(cluster)
    if a is None or a.state in ("idle", "running", "held"):
        return None
    if a.state == "removed":
        return f"the DAGMan job was removed ({a.note})" if a.note else "the DAGMan job was removed"
    return f"DAGMan exited with code {a.exit_code}" if a.exit_code is not None else "DAGMan died"


def _hold_detail(a: Attempt, memory_mb: int | None) -> str:
    text = f"held: {a.hold_reason or 'no reason given'}"
    if a.hold_code == MEMORY_HOLD_CODE or "memory" in a.hold_reason.lower():
        now = f" (now {memory_mb} MB)" if memory_mb else ""
        text += f" — raise request_memory: set resources.memory of this step in the job file{now}"
    return text


def _failure(a: Attempt, memory_mb: int | None) -> str:
    if a.state == "removed":
        return (
            _hold_detail(a, memory_mb) if a.hold_reason else f"removed: {a.note or 'by condor_rm'}"
        )
    if a.signal is not None:
        return f"killed by signal {a.signal}" + (f" on {a.host}" if a.host else "")
    return f"exit code {a.exit_code}" + (f" on {a.host}" if a.host else "")


def step_status(
    log: StepLog,
    after_cluster: int,
    retries: int,
    dag_over: str | None,
    memory_mb: int | None = None,
    submit_error: str | None = None,
) -> StepStatus:
    """The engine's view of one step: queued (idle, held, awaiting a retry), running, exited,
    or lost.

    A failed attempt is final when no retry will follow: DAGMan has ended, the exit code is
    the no-retry one, or the step has failed more times than it may be retried.
    `submit_error` is why DAGMan could not submit the step, if it could not (`submit_failures`).
    """
    attempts = [a for c, a in sorted(log.attempts.items()) if c > after_cluster]
    if not attempts:
        if dag_over:
            why = f"; DAGMan could not submit it: {submit_error}" if submit_error else ""
            return StepStatus("lost", None, f"never started: {dag_over}{why}")
        return StepStatus("queued", None, "queued in the DAG")
    last = attempts[-1]
    if last.state == "succeeded":
        return StepStatus("exited", 0, f"succeeded on {last.host}" if last.host else "")
    failures = sum(1 for a in attempts if a.failed)
    tries = f" (attempt {len(attempts)} of {retries + 1})" if retries else ""
    if last.failed:
        final = dag_over or last.exit_code == NO_RETRY_EXIT or failures > retries
        if final:
            return StepStatus("exited", last.exit_code, _failure(last, memory_mb) + tries)
        return StepStatus(
            "queued", None, f"{_failure(last, memory_mb)}{tries}; DAGMan will retry it"
        )
    if dag_over:
        return StepStatus("lost", None, f"{dag_over} while the step was {last.state}")
    if last.state == "held":
        return StepStatus("queued", None, _hold_detail(last, memory_mb))
    note = f"; {last.note}" if last.note else ""
    if last.state == "running":
        where = f" on {last.host}" if last.host else ""
        return StepStatus("running", None, f"running{where}{tries}{note}")
    return StepStatus("queued", None, _idle_detail(last, tries) + note)


def _idle_detail(a: Attempt, tries: str) -> str:
    """An idle job: since when, and — if it never ran — how to ask HTCondor why.

    The event log cannot say why nothing matches; `condor_q -better-analyze` can. The
    usual cause on a new pool is FILESYSTEM_DOMAIN: with should_transfer_files = NO a job
    matches only machines sharing the access point's (docs/cluster.md).
    """
    when = time.localtime(a.submitted) if a.submitted else None
    since = f" since {time.strftime('%Y-%m-%d %H:%M', when)}" if when else ""
    text = f"idle{since}, waiting for a machine{tries}"
    if not a.host:
        text += (
            f"; if it stays idle, `condor_q -better-analyze {a.cluster}.0` says why (often: "
            "no execute node shares the access point's FILESYSTEM_DOMAIN)"
        )
    return text


# --- DAGMan's own account of what it could not submit ------------------------------------

_STAMP = re.compile(r"^\d+/\d+/\d+ \d+:\d+:\d+(?:\.\d+)? ")  # dprintf's default time format
_SUBMITTING = re.compile(r"Submitting (?:\w+ )?Node (\S+) job\(s\)")
# The failure lines of one try (dagman_submit.cpp); DAGMan's other ERROR lines (its summary
# of failed nodes, say) are not about a submission.
_ERROR = re.compile(
    r"^(ERROR: on Line \d+ of submit file|submit error:|ERROR: submit attempt failed"
    r"|could not open submit file|ERROR.*Failed to run condor_submit)"
)


def submit_failures(dagman_out: str, lib_err: str, cluster: int) -> dict[str, str]:
    """Why DAGMan could not submit nodes, by node name, from `<dag>.dagman.out` and DAGMan's
    stderr `<dag>.lib.err`.

    - A node that fails to submit has no job, so its step's event log stays empty; after
      DAGMAN_MAX_SUBMIT_ATTEMPTS DAGMan fails it without RETRY (dag.cpp, ProcessFailedSubmit).
    - dagman.out, at the default DAGMAN_VERBOSITY, has `Submitting HTCondor Node <node>
      job(s)...` (23.0, 24.0: `Submitting <type> Node`) before each try, then `ERROR: on Line
      N of submit file: ...` and `submit error: ...` (dagman_submit.cpp).
    - condor_submit's own complaints, e.g. the transfer rule's, are printed to stderr
      (print_wrapped_text in submit_utils.cpp), which is `<dag>.lib.err`, shared by all nodes.
    - dagman.out is appended by every DAGMan of the DAG file: only the part written by DAGMan
      job `cluster` counts, from its `** condor_scheduniv_exec.<cluster>.0 ... STARTING UP`
      to the next start.
    """
    lines = dagman_out.splitlines()
    starts = [i for i, line in enumerate(lines) if "(CONDOR_DAGMAN) STARTING UP" in line]
    ours = [i for i in starts if f"condor_scheduniv_exec.{cluster}." in lines[i]]
    begin = (ours or starts or [0])[-1]
    end = next((i for i in starts if i > begin), len(lines))
    errors: dict[str, list[str]] = {}
    node = None
    for raw in lines[begin:end]:
        line = _STAMP.sub("", raw).strip()
        found = _SUBMITTING.search(line)
        if found:
            node = found.group(1)
            errors[node] = []  # a new try: only the last one's errors count
        elif node and _ERROR.match(line) and line not in errors[node]:
            errors[node].append(line)
    stderr = []  # paragraphs, wrapped at 78 columns, once per try
    for paragraph in re.split(r"\n\s*\n", lib_err):
        text = " ".join(paragraph.split())
        if text and text not in stderr:
            stderr.append(text)
    return {name: " / ".join(found + stderr) for name, found in errors.items() if found}
