"""`arcjobs model ...`: model helpers a person runs by hand (the steps use the same code)."""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path

import click

from arcjobs import atomic


@click.group()
def model() -> None:
    """Model helpers."""


@model.command()
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Directory to create.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the random weights.")
def tiny(out: Path, seed: int) -> None:
    """Build the tiny random Llama model + tokenizer into OUT (replacing it atomically)."""
    from arcjobs.models.tiny import TinySpec, build_tiny

    out = out.absolute()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}-{uuid.uuid4().hex[:8]}")
    tmp.mkdir()
    try:
        build_tiny(tmp, TinySpec(seed=seed))
        atomic.publish_dir(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    click.echo(str(out))
