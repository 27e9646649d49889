"""The event-log follower on HTCondor job event logs, read by the real `htcondor2.JobEventLog`.

The bindings cannot write user logs, so the logs in tests/fixtures/condor/events/ are
hand-written in HTCondor's documented user-log format (event number, `(cluster.proc.subproc)`,
timestamp, text lines, `...` separator), shaped like what a schedd writes for DAG node jobs:
success, failure exit codes (retried, then final), a hold for exceeded memory followed by the
`periodic_remove` abort, an eviction, termination by a signal, and DAGMan's own log. A log
still being written is produced by cutting a real-format file in the middle of an event.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from arcjobs.backends.condor_events import (
    Follower,
    dagman_outcome,
    step_status,
    submit_failures,
)
from arcjobs.errors import UserError

pytestmark = pytest.mark.unit

EVENTS = Path(__file__).parent / "fixtures" / "condor" / "events"
DAGMAN = 100  # the cluster id of the DAGMan job in the fixtures; node jobs come after it


def status(name: str, retries: int = 0, dag_over: str | None = None, memory_mb: int = 0):
    log = Follower().read(EVENTS / name)
    return step_status(log, DAGMAN, retries, dag_over, memory_mb or None)


def test_success_is_exit_zero_with_the_host():
    s = status("success.log")
    assert (s.state, s.exit_code) == ("exited", 0)
    assert "gpu07.example.org" in s.detail


def test_a_failure_with_retries_left_is_queued_again_and_says_dagman_retries():
    log = Follower().read(EVENTS / "failed_twice.log")
    # Two failed attempts and RETRY 2: DAGMan submits a third.
    first = step_status(log, after_cluster=DAGMAN, retries=2, dag_over=None)
    assert first.state == "queued"
    assert "exit code 3" in first.detail and "DAGMan will retry" in first.detail


def test_failures_beyond_the_retries_are_final_with_the_exit_code():
    s = status("failed_twice.log", retries=1)
    assert (s.state, s.exit_code) == ("exited", 3)
    assert "exit code 3 on gpu08.example.org" in s.detail
    assert "attempt 2 of 2" in s.detail


def test_exit_code_2_is_final_at_once_because_dagman_does_not_retry_bad_input():
    s = status("bad_input.log", retries=3)
    assert (s.state, s.exit_code) == ("exited", 2)


def test_memory_hold_then_removal_reports_the_reason_and_what_to_raise():
    s = status("held_memory.log", retries=0, memory_mb=131072)
    assert s.state == "exited" and s.exit_code is None
    assert s.detail.startswith("held: Error from slot1_1@gpu07.example.org: Job has gone over")
    assert "raise request_memory" in s.detail and "resources.memory" in s.detail
    assert "now 131072 MB" in s.detail


def test_hold_still_in_the_queue_is_queued_with_the_hold_reason(tmp_path):
    text = (EVENTS / "held_memory.log").read_text()
    held_only = tmp_path / "held.log"
    held_only.write_text(text[: text.index("009 (401")])
    s = step_status(Follower().read(held_only), DAGMAN, 0, None, 2048)
    assert s.state == "queued" and s.detail.startswith("held: ")
    assert "now 2048 MB" in s.detail


def test_eviction_requeues_and_the_step_runs_again_elsewhere():
    s = status("evicted_then_running.log")
    assert s.state == "running"
    assert "running on gpu09.example.org" in s.detail
    assert "evicted from gpu07.example.org, requeued" in s.detail


def test_killed_by_a_signal():
    s = status("killed.log")
    assert s.state == "exited" and s.exit_code is None
    assert s.detail.startswith("killed by signal 9")


def test_no_events_yet_is_queued_and_becomes_lost_when_dagman_is_over(tmp_path):
    missing = tmp_path / "not-yet.log"
    assert status_of(missing, None).state == "queued"
    lost = status_of(missing, "DAGMan exited with code 1")
    assert lost.state == "lost" and "never started: DAGMan exited with code 1" in lost.detail


def status_of(path: Path, dag_over: str | None):
    return step_status(Follower().read(path), DAGMAN, 0, dag_over)


def test_events_of_an_earlier_submission_of_the_run_are_ignored():
    # The same step log after the run was resubmitted: DAGMan is now cluster 400, so the
    # failures of clusters 301 and 305 belong to the earlier DAG.
    log = Follower().read(EVENTS / "failed_twice.log")
    assert step_status(log, after_cluster=400, retries=0, dag_over=None).state == "queued"


def test_dagman_outcome_from_its_own_log():
    f = Follower()
    assert dagman_outcome(f.read(EVENTS / "dagman_running.log"), DAGMAN) is None
    assert dagman_outcome(f.read(EVENTS / "dagman_failed.log"), DAGMAN) == (
        "DAGMan exited with code 1"
    )
    removed = dagman_outcome(f.read(EVENTS / "dagman_removed.log"), DAGMAN)
    assert removed == "the DAGMan job was removed (via condor_rm (by user alice))"
    assert dagman_outcome(f.read(EVENTS / "dagman_failed.log"), 99) is None  # another DAG


def test_a_running_step_is_lost_when_dagman_ends_under_it():
    s = status("evicted_then_running.log", dag_over="the DAGMan job was removed")
    assert s.state == "lost" and "while the step was running" in s.detail


def test_a_log_still_being_written_is_read_incrementally(tmp_path):
    """Cut the success log inside its terminated event: the follower reports the job running,
    then, once the rest of the event is appended, exited 0 — through one kept reader."""
    text = (EVENTS / "success.log").read_text()
    cut = text.index("005 (201") + 40
    live = tmp_path / "condor.log"
    live.write_text(text[:cut])
    follower = Follower()
    first = step_status(follower.read(live), DAGMAN, 0, None)
    assert first.state == "running" and "gpu07" in first.detail
    with live.open("a") as f:
        f.write(text[cut:])
    done = step_status(follower.read(live), DAGMAN, 0, None)
    assert (done.state, done.exit_code) == ("exited", 0)


def test_a_log_that_appears_later_is_picked_up(tmp_path):
    follower = Follower()
    path = tmp_path / "condor.log"
    assert step_status(follower.read(path), DAGMAN, 0, None).detail == "queued in the DAG"
    shutil.copy(EVENTS / "bad_input.log", path)
    assert step_status(follower.read(path), DAGMAN, 0, None).exit_code == 2


def test_an_unreadable_log_is_retried_then_reported_in_one_line(tmp_path):
    """A terminated event without its usage lines is not HTCondor's format: ULOG_RD_ERROR."""
    bad = tmp_path / "condor.log"
    text = (EVENTS / "success.log").read_text()
    bad.write_text(text[: text.index("\t\tUsr")] + "...\n")
    follower = Follower()
    for _ in range(Follower.MAX_READ_ERRORS - 1):
        follower.read(bad)  # starts over each time: the damage may be a write in progress
    with pytest.raises(UserError) as e:
        follower.read(bad)
    assert str(e.value) == f"cannot read HTCondor event log {bad}: ULOG_RD_ERROR"


def test_a_released_hold_is_forgotten(tmp_path):
    """condor_release after a hold: the job is idle again, and a later removal is a removal."""
    text = (EVENTS / "held_memory.log").read_text()
    held, aborted = text[: text.index("009 (401")], text[text.index("009 (401") :]
    released = "013 (401.000.000) 2026-11-25 10:05:10 Job was released.\n\tvia condor_release (by user alice)\n...\n"
    log = tmp_path / "condor.log"
    log.write_text(held + released)
    follower = Follower()
    s = step_status(follower.read(log), DAGMAN, 0, None)
    assert (s.state, s.detail) == ("queued", "idle since 2026-11-25 10:00, waiting for a machine")
    with log.open("a") as f:
        f.write(
            aborted.replace(
                "The job attribute PeriodicRemove expression '(JobStatus == 5) && (HoldReasonCode =!= 1)' evaluated to TRUE",
                "via condor_rm (by user alice)",
            )
        )
    s = step_status(follower.read(log), DAGMAN, 0, None)
    assert s.state == "exited" and s.detail == "removed: via condor_rm (by user alice)"


def until_terminated(tmp_path: Path, then: str) -> Path:
    """success.log up to its terminated event, then `then`: a job that ran on gpu07."""
    text = (EVENTS / "success.log").read_text()
    log = tmp_path / "condor.log"
    log.write_text(text[: text.index("005 (201")] + then)
    return log


SHADOW_EXCEPTION = (
    "007 (201.000.000) 2026-11-25 10:30:00 Shadow exception!\n"
    "\tError from slot1_1@gpu07.example.org: Failed to open '/staging/log.txt' as standard "
    "output: No such file or directory (errno 2)\n"
    "\t0  -  Run Bytes Sent By Job\n\t0  -  Run Bytes Received By Job\n...\n"
)
RECONNECT_FAILED = (
    "024 (201.000.000) 2026-11-25 10:30:00 Job reconnection failed\n"
    "    Job disconnected too long: JobLeaseDuration (2400 seconds) expired\n"
    "    Can not reconnect to slot1_1@gpu07.example.org, rescheduling job\n...\n"
)


@pytest.mark.parametrize(
    ("event", "said"),
    [
        (SHADOW_EXCEPTION, "shadow exception on gpu07.example.org: Error from slot1_1@"),
        (RECONNECT_FAILED, "reconnect failed on gpu07.example.org: Job disconnected too long"),
    ],
)
def test_a_job_the_shadow_lost_is_idle_again_not_running_on_its_old_host(tmp_path, event, said):
    """The schedd marks the job idle when its shadow is gone (schedd.cpp, _mark_job_stopped);
    the next execute event says where it runs again."""
    log = until_terminated(tmp_path, event)
    follower = Follower()
    s = step_status(follower.read(log), DAGMAN, 0, None)
    assert s.state == "queued" and "running" not in s.detail
    assert s.detail.startswith("idle since 2026-11-25 10:00, waiting for a machine; ")
    assert said in s.detail and s.detail.endswith("; requeued")
    with log.open("a") as f:
        f.write(
            "001 (201.000.000) 2026-11-25 10:40:00 Job executing on host: "
            "<10.0.0.9:9618?addrs=10.0.0.9-9618&alias=gpu09.example.org>\n...\n"
        )
    again = step_status(follower.read(log), DAGMAN, 0, None)
    assert again.state == "running" and again.detail.startswith("running on gpu09.example.org")


def test_a_job_that_never_ran_says_since_when_and_how_to_ask_htcondor_why(tmp_path):
    text = (EVENTS / "success.log").read_text()
    log = tmp_path / "condor.log"
    log.write_text(text[: text.index("001 (201")])  # submitted only
    s = step_status(Follower().read(log), DAGMAN, 0, None)
    assert s.state == "queued"
    assert s.detail == (
        "idle since 2026-11-25 10:00, waiting for a machine; if it stays idle, "
        "`condor_q -better-analyze 201.0` says why (often: no execute node shares the access "
        "point's FILESYSTEM_DOMAIN)"
    )


DAGMAN_OUT = Path(__file__).parent / "fixtures" / "condor" / "dagman"


def test_why_a_node_could_not_be_submitted_comes_from_dagmans_own_files():
    """dagman.out has the node's failed tries; DAGMan's stderr (lib.err) has condor_submit's
    message, printed once per try; an earlier DAGMan's lines in the same file do not count."""
    out = (DAGMAN_OUT / "run.dag.dagman.out").read_text()
    err = (DAGMAN_OUT / "run.dag.lib.err").read_text()
    assert submit_failures(out, err, DAGMAN) == {
        "learn": "ERROR: on Line 31 of submit file: failed to create job classad / ERROR: you "
        'specified files you want Condor to transfer via "transfer_input_files", but you '
        "disabled should_transfer_files."
    }
    assert submit_failures(out, "", 90) == {
        "learn": "ERROR: on Line 12 of submit file: an error of an earlier DAGMan"
    }
    assert submit_failures("", err, DAGMAN) == {}
    s = step_status(
        Follower().read(DAGMAN_OUT / "none.log"),
        DAGMAN,
        0,
        "DAGMan exited with code 1",
        submit_error="why",
    )
    assert (s.state, s.detail) == (
        "lost",
        "never started: DAGMan exited with code 1; DAGMan could not submit it: why",
    )
