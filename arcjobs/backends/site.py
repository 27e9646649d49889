"""The site config: what differs from one cluster to the next, in one YAML file.

A job file says what to compute; the site config says where the cluster keeps things and what
its scheduler wants to hear. Keeping the two apart is what lets the same `jobs/*.yaml` run on
a workstation and on any pool. Top-level keys are HTCondor's, but for what every cluster
backend shares (`data_root`, `image_cache`, `environment`); Slurm's own live under `slurm:`.
The file is looked up at `--site PATH`, else `$ARCJOBS_SITE`, else
`~/.config/arcjobs/site.yaml`; without one, every field has a default that suits a
single-scheduler cluster whose shared filesystem is mounted at the same path everywhere —
which the condor backend requires of the data root (see `data_root`).

Each field's `description` is its documentation: docs/cluster.md's two tables are generated
from them (`arcjobs.backends.site_doc`), beside an annotated example.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from arcjobs.errors import UserError
from arcjobs.spec.schema import memory_mb

DEFAULT_PATH = Path("~/.config/arcjobs/site.yaml")
# Slurm's time limit formats (sbatch --time): M, M:S, H:M:S, D-H, D-H:M, D-H:M:S.
SLURM_TIME = re.compile(r"^(\d+(:\d+){0,2}|\d+-\d+(:\d+){0,2})$")


class SlurmSite(BaseModel):
    """The `slurm:` section: where and how the slurm backend submits; every field optional."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    partition: str | None = Field(
        None, description="`--partition` of every step; none: the cluster's default."
    )
    account: str | None = Field(None, description="`--account` of every step.")
    qos: str | None = Field(None, description="`--qos` of every step.")
    time: str | None = Field(
        None,
        description="`--time` of every step: minutes, `H:MM:SS` or `D-HH[:MM[:SS]]`, quoted "
        "(unquoted, YAML reads `4:00:00` as the number 14400); none: the partition's default.",
    )
    gpu_flag: Literal["gres", "gpus"] = Field(
        "gres", description="How GPUs are asked: `--gres=gpu[:type]:N` or `--gpus=[type:]N`."
    )
    gpu_type: str | None = Field(
        None, description="A GPU type the cluster's gres names (`a100`, `h100`, ...)."
    )
    sbatch: list[str] = Field(
        default_factory=list,
        description="Extra options, each starting with `-`, added as `#SBATCH` lines "
        "(`--exclusive`, `--constraint=ib`).",
    )
    setup: list[str] = Field(
        default_factory=list,
        description="Shell lines in every batch script before the step starts "
        "(`module load cuda/12.4`).",
    )
    runtime: Literal["apptainer", "docker", "none"] = Field(
        "apptainer",
        description="What a step runs in: a `.sif` under Apptainer, the Docker image by digest, "
        "or the node's own environment (see The runtimes).",
    )
    image_cache: Path | None = Field(
        None,
        description="The `.sif` cache for Apptainer; none: the top-level `image_cache`, "
        "else `<data_root>/images`.",
    )

    @field_validator("time", mode="before")
    @classmethod
    def _time(cls, v: object) -> object:
        if isinstance(v, int | float):  # YAML reads 4:00:00 as 14400, and 1:30 like 90
            raise ValueError(f"quote the time limit ('90', '4:00:00'): YAML read it as {v}")
        if v is not None and not SLURM_TIME.match(str(v)):
            raise ValueError(f"expected a Slurm time limit such as 90, 4:00:00 or 2-00, got {v!r}")
        return v

    @field_validator("sbatch")
    @classmethod
    def _options(cls, v: list[str]) -> list[str]:
        for option in v:
            if not option.startswith("-") or any(c in option for c in "\n\r\0"):
                raise ValueError(
                    f"expected one sbatch option per item such as --exclusive, got {option!r}"
                )
        return v

    @field_validator("setup")
    @classmethod
    def _lines(cls, v: list[str]) -> list[str]:
        for line in v:
            if any(c in line for c in "\n\r\0"):
                raise ValueError(f"one shell line per item, got {line!r}")
        return v

    @field_validator("image_cache")
    @classmethod
    def _absolute(cls, v: Path | None) -> Path | None:
        return SiteConfig._absolute(v)  # the same rule as the top-level paths


class SiteConfig(BaseModel):
    """One pool's settings; every field optional."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    schedd: str | None = Field(
        None,
        description="The access point's schedd the DAG is submitted to (`condor_submit_dag -r`, "
        "or located through `collector`); none: the local one.",
    )
    collector: str | None = Field(
        None, description="The central manager that locates `schedd`; none: HTCondor's config."
    )
    data_root: Path | None = Field(
        None,
        description="The data root on the shared filesystem, the same path on the submit side "
        "and the execute nodes, bound at `/data`. A check, not a mapping: `plan` and `run` "
        "refuse a launcher data root other than this path (condor: and this path if it does "
        "not exist).",
    )
    image_cache: Path | None = Field(
        None,
        description="The `.sif` cache and its `index.json` (`arcjobs images apptainer`); "
        "none: `<data_root>/images`.",
    )
    requirements: str | None = Field(
        None, description="Extra ClassAd requirements, ANDed with HTCondor's and each step's."
    )
    accounting_group: str | None = Field(None, description="Fair-share accounting group.")
    accounting_group_user: str | None = Field(
        None, description="The user accounted within `accounting_group`."
    )
    gpus_minimum_memory: int | None = Field(
        None,
        description="Each GPU's nominal memory for GPU steps, MB (`40G` and `40960M` read too); "
        "GPUs reporting at least 90% of it match (`require_gpus`).",
    )
    gpus_minimum_capability: float | None = Field(
        None, description="The least CUDA compute capability of GPU steps' GPUs (8.0: bf16)."
    )
    gpus_minimum_runtime: str | None = Field(
        "13.0",
        pattern=r"^\d+(\.\d)?$",
        description="The least CUDA version the GPU's driver must support "
        "(`MaxSupportedVersion`): the images' own, 13.0 for the shipped Dockerfiles "
        "(driver >= 580); `null` for none.",
    )
    retries: int = Field(
        1,
        ge=0,
        le=10,
        description="DAGMan retries of every step on failure, added to the step's `retries:`.",
    )
    request_disk: int = Field(
        20 * 1024,
        ge=1,
        description="`request_disk` of every step: execute-node scratch, MB (`20G` reads too).",
    )
    submit: Literal["bindings", "condor_submit_dag"] = Field(
        "bindings",
        description="How the DAG is submitted: `htcondor2.Submit.from_dag` + `Schedd.submit`, "
        "or the `condor_submit_dag` command.",
    )
    environment: dict[str, str] = Field(
        default_factory=dict, description="Extra environment variables for every step."
    )
    slurm: SlurmSite = Field(
        default_factory=SlurmSite, description="The slurm backend's settings (next table)."
    )

    @field_validator("gpus_minimum_memory", "request_disk", mode="before")
    @classmethod
    def _megabytes(cls, v: object) -> object:
        return memory_mb(v) if isinstance(v, str) else v

    @field_validator("gpus_minimum_runtime", mode="before")
    @classmethod
    def _version(cls, v: object) -> object:
        return str(v) if isinstance(v, int | float) else v  # YAML reads 12.8 as a number

    @field_validator("data_root", "image_cache")
    @classmethod
    def _absolute(cls, v: Path | None) -> Path | None:
        if v is not None and not v.expanduser().is_absolute():
            raise ValueError(f"must be an absolute path on the shared filesystem, got {v}")
        return v.expanduser() if v is not None else None

    @field_validator("environment")
    @classmethod
    def _env_names(cls, v: dict[str, str]) -> dict[str, str]:
        for name in v:
            if not name.replace("_", "").isalnum() or name[0].isdigit():
                raise ValueError(f"{name!r} is not an environment variable name")
        return {k: str(x) for k, x in v.items()}

    def images_dir(self, data_root: Path) -> Path:
        return self.image_cache or Path(data_root).absolute() / "images"

    def check_data_root(self, data_root: Path, site_file: object, backend: str) -> None:
        """The launcher's data root must be the site's `data_root`, where the site names one:
        a cluster backend writes paths that the login node and the compute nodes both read,
        so there is one path, not a mapping."""
        wanted = self.data_root
        if wanted is not None and Path(os.path.normpath(wanted)) != data_root:
            raise UserError(
                f"{site_file}: data_root is {wanted}, but the launcher's data root is "
                f"{data_root}; the {backend} backend needs one path, the same on the submit "
                f"side and the execute nodes: run with --data-root {wanted} (or export "
                f"ARCJOBS_DATA_ROOT={wanted})"
            )


def site_path(path: str | Path | None = None) -> Path:
    """Where the site config is read from: the argument, $ARCJOBS_SITE, or the default."""
    chosen = path or os.environ.get("ARCJOBS_SITE") or DEFAULT_PATH
    return Path(chosen).expanduser()


def load_site(path: str | Path | None = None) -> SiteConfig:
    """The site config at `site_path(path)`; defaults when the default file does not exist.

    A path given explicitly (argument or $ARCJOBS_SITE) must exist: silently running with
    defaults on a cluster the user meant to describe would submit to the wrong place.
    """
    file = site_path(path)
    explicit = bool(path or os.environ.get("ARCJOBS_SITE"))
    if not file.exists():
        if explicit:
            raise UserError(f"site config {file} does not exist")
        return SiteConfig()
    try:
        data = yaml.safe_load(file.read_text()) or {}
    except yaml.YAMLError as e:
        raise UserError(f"{file}: not valid YAML: {getattr(e, 'problem', e)}") from None
    if not isinstance(data, dict):
        raise UserError(f"{file}: expected a mapping of settings, got {type(data).__name__}")
    try:
        return SiteConfig.model_validate(data)
    except ValidationError as e:
        err = e.errors()[0]
        key = ".".join(str(p) for p in err["loc"])
        if err["type"] == "extra_forbidden":
            section = SlurmSite if err["loc"][0] == "slurm" and len(err["loc"]) > 1 else SiteConfig
            known = ", ".join(section.model_fields)
            raise UserError(f"{file}: {key}: unknown setting; expected one of: {known}") from None
        raise UserError(f"{file}: {key}: {err['msg']}") from None
