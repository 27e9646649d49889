"""`arcjobs step KIND --name value ... --out DIR`: how a backend runs one step."""

from __future__ import annotations

from pathlib import Path

import click

from arcjobs.steps import get_kind, kind_names
from arcjobs.steps.runner import run_step


@click.command(
    context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
    add_help_option=False,
)
@click.argument("kind")
@click.option("--out", type=click.Path(path_type=Path), help="The step's output directory.")
@click.pass_context
def step(ctx: click.Context, kind: str, out: Path | None) -> None:
    """Run one step of KIND with `--name value` parameters and publish it as --out.

    `arcjobs step KIND --help` lists KIND's parameters.
    """
    if kind in ("--help", "-h") or "--help" in ctx.args:
        _print_help(kind)
        return
    if out is None:
        raise click.UsageError("--out DIR is required")
    run_step(kind, list(ctx.args), out)


def _print_help(kind: str) -> None:
    if kind not in kind_names():
        click.echo("Usage: arcjobs step KIND --name value ... --out DIR\n\nKinds:")
        for name in kind_names():
            click.echo(f"  {name:12s} {get_kind(name).description}")
        return
    k = get_kind(kind)
    click.echo(f"Usage: arcjobs step {kind} [--name value]... --out DIR\n\n{k.description}\n")
    for name, field in k.params.model_fields.items():
        if field.is_required():
            default = "required"
        else:
            value = field.default_factory() if field.default_factory else field.default  # type: ignore[call-arg]
            default = f"default {value!r}"
        doc = f" {field.description}" if field.description else ""
        click.echo(f"  --{name.replace('_', '-'):24s} ({default}){doc}")
