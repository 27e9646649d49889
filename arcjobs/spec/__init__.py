"""The job language: load a YAML job file into a validated, expanded `Job`."""

from arcjobs.spec.loader import load_job
from arcjobs.spec.model import Job, Resources, Step

__all__ = ["Job", "Resources", "Step", "load_job"]
