"""The `arcjobs` command line.

Subcommands live in `arcjobs.commands.<name>` and are imported only when invoked, so
`arcjobs --help` stays fast and never touches torch, vLLM or TRL. A `UserError` anywhere
becomes one line on stderr and exit code 2.
"""

from __future__ import annotations

import importlib
import sys

import click

from arcjobs import __version__
from arcjobs.errors import UserError

# name → (module:attribute, one-line help shown by `arcjobs --help` without importing it)
COMMANDS: dict[str, tuple[str, str]] = {
    "run": ("arcjobs.commands.run:run", "Run a job (or resume a run) on a backend."),
    "plan": ("arcjobs.commands.run:plan", "Show what `run` would do, step by step, and why."),
    "status": ("arcjobs.commands.status:status", "Show runs, or one run's steps."),
    "logs": ("arcjobs.commands.status:logs", "Print (or follow) a step's log."),
    "cancel": ("arcjobs.commands.status:cancel", "Cancel a live run."),
    "step": ("arcjobs.commands.step:step", "Run one step (what a backend runs inside an image)."),
    "prompt": (
        "arcjobs.commands.prompt:prompt",
        "Print the exact messages the model gets for a task.",
    ),
    "sandbox": ("arcjobs.commands.sandbox:sandbox", "Execute model-written programs safely."),
    "model": ("arcjobs.commands.model:model", "Model helpers (e.g. build the tiny local model)."),
    "images": ("arcjobs.commands.images:images", "Build and list the container images."),
    "report": ("arcjobs.commands.report:report", "Render an HTML/Markdown report of runs."),
}


class LazyGroup(click.Group):
    """A click group that imports a subcommand's module only when that command runs."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return [n for n, (target, _) in COMMANDS.items() if _module_exists(target)]

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS or not _module_exists(COMMANDS[name][0]):
            return None
        module, attr = COMMANDS[name][0].split(":")
        return getattr(importlib.import_module(module), attr)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(n, COMMANDS[n][1]) for n in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


def _module_exists(target: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(target.split(":")[0]) is not None


@click.group(cls=LazyGroup)
@click.version_option(__version__, prog_name="arcjobs")
def cli() -> None:
    """arcjobs: test-time-training jobs for ARC-AGI, on a workstation or a cluster."""


def main() -> None:
    try:
        cli.main(standalone_mode=False)
    except UserError as e:
        click.echo(f"error: {e}", err=True)
        sys.exit(e.exit_code)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as e:
        e.show()
        sys.exit(2 if isinstance(e, click.UsageError) else e.exit_code)
    except click.exceptions.Exit as e:
        sys.exit(e.exit_code)
