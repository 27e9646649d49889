"""`arcjobs model ...`: model helpers a person runs by hand (the steps use the same code)."""

from __future__ import annotations

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

    with atomic.staged_dir(out) as tmp:
        build_tiny(tmp, TinySpec(seed=seed))
    click.echo(str(out.absolute()))
