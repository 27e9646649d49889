"""The container images: their names and tags, building them, and converting them for clusters.

The three images (`train`, `infer`, `sandbox`) are built with Docker Compose on a workstation
and tagged `arcjobs-<name>:<version>` (compose.yaml); `arcjobs.images.apptainer` turns them
into `.sif` files for HTCondor pools whose execute nodes run Apptainer.
"""

from __future__ import annotations

from arcjobs import __version__

IMAGES: tuple[str, ...] = ("train", "infer", "sandbox")


def docker_tag(name: str, version: str = __version__) -> str:
    """The Docker tag compose.yaml gives image `name` (`arcjobs-sandbox:0.1.0`)."""
    return f"arcjobs-{name}:{version}"
