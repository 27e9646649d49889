"""`arcjobs images ...`: the container images. Each subcommand is its own function below, so
`build` and `list` (Docker Compose) sit beside `apptainer` (conversion for clusters)."""

from __future__ import annotations

from pathlib import Path

import click

from arcjobs.errors import UserError
from arcjobs.images import IMAGES


@click.group()
def images() -> None:
    """Build, list and convert the train, infer and sandbox images."""


def _pairs(values: tuple[str, ...], option: str) -> dict[str, str]:
    out = {}
    for value in values:
        name, sep, rest = value.partition("=")
        if not sep or name not in IMAGES or not rest:
            raise UserError(f"{option} {value!r}: expected NAME=VALUE with NAME one of {IMAGES}")
        out[name] = rest
    return out


@images.command()
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    help="The shared image cache (default: the site config's image_cache).",
)
@click.option(
    "--image",
    "names",
    multiple=True,
    type=click.Choice(IMAGES),
    help="Convert only this image (repeatable; default: those given --archive, else all).",
)
@click.option(
    "--archive",
    multiple=True,
    metavar="NAME=FILE",
    help="Convert from a `docker save` archive instead of the local Docker daemon.",
)
@click.option("--tag", multiple=True, metavar="NAME=TAG", help="Docker tag to convert for NAME.")
@click.option(
    "--tmpdir",
    type=click.Path(path_type=Path),
    help="APPTAINER_TMPDIR: room to unpack layers (default: OUT/.apptainer-tmp).",
)
@click.option(
    "--cachedir",
    type=click.Path(path_type=Path),
    help="APPTAINER_CACHEDIR: Apptainer's layer cache (default: OUT/.apptainer-cache).",
)
@click.option("--site", type=click.Path(path_type=Path), help="Site config (env ARCJOBS_SITE).")
@click.option(
    "--data-root",
    envvar="ARCJOBS_DATA_ROOT",
    default="data",
    type=click.Path(path_type=Path),
    help="Data root, for the default cache <data_root>/images.",
)
def apptainer(
    out: Path | None,
    names: tuple[str, ...],
    archive: tuple[str, ...],
    tag: tuple[str, ...],
    tmpdir: Path | None,
    cachedir: Path | None,
    site: Path | None,
    data_root: Path,
) -> None:
    """Convert the built images to .sif files in the shared image cache (once per digest)."""
    from arcjobs.backends.site import load_site
    from arcjobs.images.apptainer import convert

    cache = out or load_site(site).images_dir(data_root)
    archives = {k: Path(v) for k, v in _pairs(archive, "--archive").items()}
    convert(
        list(names or (archives and [n for n in IMAGES if n in archives]) or IMAGES),
        cache,
        archives=archives,
        tmpdir=tmpdir,
        cachedir=cachedir,
        tags=_pairs(tag, "--tag"),
        echo=lambda line: click.echo(line, err=True),
    )
