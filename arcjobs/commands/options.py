"""Options shared by several commands, declared once."""

from __future__ import annotations

from pathlib import Path

import click

data_root = click.option(
    "--data-root",
    envvar="ARCJOBS_DATA_ROOT",
    default="data",
    show_default=True,
    type=click.Path(path_type=Path),
    help="The data root (runs, models, caches); env ARCJOBS_DATA_ROOT.",
)
backend = click.option(
    "--backend",
    "-b",
    default="local",
    show_default=True,
    help="Where steps run: local, compose, condor or slurm.",
)
overrides = click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="KEY=VALUE",
    help=(
        "Override a job parameter (KEY=VALUE) or one key of a step's with: (STEP.KEY=VALUE);"
        " repeatable, values typed as in YAML."
    ),
)
# No envvar here: the cluster backends read $ARCJOBS_SITE themselves, and a site exported for
# them must not count as an option given to the local backend (which refuses one).
site = click.option(
    "--site",
    type=click.Path(path_type=Path),
    help="Cluster site config (condor and slurm backends; see docs/cluster.md); env ARCJOBS_SITE.",
)
run_id = click.option("--run-id", help="Name the run; an existing run id resumes that run.")
