"""What HTCondor would make of a submit description: its rules for the parts arcjobs relies on,
restated from HTCondor's source so that tests can check generated files against them.

A STAND-IN for condor_submit and the starter, which cannot run here: the `htcondor2` bindings
parse submit files but build no job ad (`Submit.jobs()` raises NotImplementedError), and no
HTCondor is installed. Each rule names the function it restates (htcondor/htcondor, read on
HEAD of Aug 2026 and the 23.0, 24.0 and 25.0 branches, which agree on all of them):

- src/condor_utils/submit_utils.cpp: `process_container_input_files`, `SetTransferFiles`,
  `SetRequirements`, the SimpleSubmitKeyword table (submit command → job attribute);
- src/condor_starter.V6.1/vanilla_proc.cpp `VanillaProc::outputOpenFlags` and
  user_proc.h `UserProc::outputOpenFlags`;
- the startd's match of `RequireGPUs`, evaluated against each GPU's properties
  (condor_gpu_discovery: Capability, GlobalMemoryMb, MaxSupportedVersion).
"""

from __future__ import annotations

import os
from typing import Any

import classad2

# Submit command → job attribute, for the commands below (SimpleSubmitKeyword table).
JOB_ATTRIBUTE = {
    "transfer_container": "TransferContainer",
    "erase_output_and_error_on_restart": "EraseOutputAndErrorOnRestart",
}
DEFAULT_CONTAINER_SHARED_FS = "/cvmfs"  # param_info.in


class SubmitRefused(Exception):
    """condor_submit (or DAGMan's direct submit) would refuse the job, with this message."""


def _bool(sub: Any, command: str, default: bool) -> bool:
    value = sub.get(command)
    return default if value is None else classad2.ExprTree(value).eval() is True


def container_input_files(sub: Any, container_shared_fs: str = DEFAULT_CONTAINER_SHARED_FS) -> list:
    """`process_container_input_files`: the files the container image adds to the input list.

    Nothing when `transfer_container` is false, when the image lies under one of
    CONTAINER_SHARED_FS's prefixes, or is a docker:// or oras:// URL; else the image itself.
    """
    image = sub.get("container_image")
    if sub.get("universe") != "container" or not image:
        return []
    if not _bool(sub, "transfer_container", True):
        return []
    if any(image.startswith(p) for p in container_shared_fs.split(",") if p):
        return []
    if image.startswith(("docker://", "oras://")):
        return []
    return [image]


def check_transfer(sub: Any, container_shared_fs: str = DEFAULT_CONTAINER_SHARED_FS) -> None:
    """`SetTransferFiles`, error (F): input files to transfer while should_transfer_files = NO."""
    inputs = [f for f in (sub.get("transfer_input_files") or "").split(",") if f.strip()]
    inputs += container_input_files(sub, container_shared_fs)
    if (sub.get("should_transfer_files") or "").upper() == "NO" and inputs:
        raise SubmitRefused(
            'you specified files you want Condor to transfer via "transfer_input_files", '
            "but you disabled should_transfer_files."
        )


def job_requirements(sub: Any) -> str:
    """`SetRequirements`, the file-transfer clause: with should_transfer_files = NO the job
    must match a machine of its own FileSystemDomain, unless its requirements already say
    something about FileSystemDomain. (Only that clause: the others are not at issue.)"""
    expr = sub.get("requirements") or "true"
    answer = f"({expr})"
    if (sub.get("should_transfer_files") or "").upper() == "NO" and (
        "filesystemdomain" not in expr.lower()
    ):
        answer += " && (TARGET.FileSystemDomain == MY.FileSystemDomain)"
    return answer


def matches(sub: Any, job_attrs: dict[str, Any], machine: dict[str, Any]) -> bool:
    """Whether the job's Requirements (as `job_requirements` builds them) hold on `machine`;
    `job_attrs` are attributes condor_submit puts in the job ad (FileSystemDomain: the
    submitting machine's FILESYSTEM_DOMAIN)."""
    job = classad2.ClassAd(job_attrs)
    return classad2.ExprTree(job_requirements(sub)).eval(job, classad2.ClassAd(machine)) is True


def output_open_flags(sub: Any) -> int:
    """How the starter opens `output` and `error` of a vanilla/container job: O_APPEND without
    O_TRUNC when EraseOutputAndErrorOnRestart is false, else O_TRUNC | O_APPEND."""
    if not _bool(sub, "erase_output_and_error_on_restart", True):
        return os.O_WRONLY | os.O_CREAT | os.O_APPEND
    return os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND


def gpu_matches(sub: Any, gpu: dict[str, Any]) -> bool:
    """Whether one GPU, given as its properties, satisfies the job's RequireGPUs."""
    expr = sub.get("require_gpus")
    return expr is None or classad2.ExprTree(expr).eval(classad2.ClassAd(gpu)) is True
