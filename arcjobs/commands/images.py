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
    help="Node-local room for a private scratch directory: the image saved from Docker and "
    "APPTAINER_TMPDIR, about twice the image's size (default: $TMPDIR, else /tmp).",
)
@click.option(
    "--cachedir",
    type=click.Path(path_type=Path),
    help="APPTAINER_CACHEDIR, yours alone: Apptainer's cache cannot be shared between users "
    "(default: inside the scratch directory, discarded).",
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


@images.command()
@click.argument("names", nargs=-1, type=click.Choice(IMAGES))
@click.option(
    "--base-image",
    envvar=["ARCJOBS_BASE_IMAGE", "BASE_IMAGE"],
    help="Base for the builds (env ARCJOBS_BASE_IMAGE or BASE_IMAGE; default: compose.yaml's, "
    "python:3.1x-slim). Offline: arcjobs-base:bookworm from scripts/make-base-image.sh.",
)
@click.option(
    "--build-arg",
    "build_args",
    multiple=True,
    metavar="KEY=VALUE",
    help="Another build argument (repeatable), e.g. CUDA=cu128 or FLASH_ATTN_WHEEL=...",
)
@click.option("--no-cache", is_flag=True, help="Rebuild every layer.")
@click.option(
    "--data-root",
    envvar="ARCJOBS_DATA_ROOT",
    default="data",
    type=click.Path(path_type=Path),
    help="Data root: digests are recorded in <data-root>/images/docker.json.",
)
def build(
    names: tuple[str, ...],
    base_image: str | None,
    build_args: tuple[str, ...],
    no_cache: bool,
    data_root: Path,
) -> None:
    """Build NAMES (default: all three) with Docker Compose, tagged with the project version."""
    from arcjobs.images.build import build as build_images

    args = {}
    for item in build_args:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UserError(f"--build-arg {item!r}: expected KEY=VALUE")
        args[key] = value
    if base_image:
        args = {"BASE_IMAGE": base_image, **args}
    build_images(
        list(names or IMAGES),
        data_root,
        args,
        no_cache=no_cache,
        echo=lambda line: click.echo(line, err=True),
    )


@images.command(name="list")
@click.option(
    "--data-root",
    envvar="ARCJOBS_DATA_ROOT",
    default="data",
    type=click.Path(path_type=Path),
    help="Data root whose <data-root>/images/docker.json records the builds.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the rows as JSON.")
def list_images(data_root: Path, as_json: bool) -> None:
    """Show the built images: tag, digest, age, size, and whether `images build` made them."""
    import json

    from rich.console import Console
    from rich.table import Table

    from arcjobs.images.build import listing

    rows = listing(data_root)
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    table = Table(title_justify="left", title=f"images ({len(rows)})")
    for col in ("image", "tag", "digest", "created", "size", "built by arcjobs", "base"):
        table.add_column(col, overflow="fold")
    for r in rows:
        table.add_row(
            r["image"],
            r["tag"] + (" (current)" if r["current"] else ""),
            r["digest"][:19],
            r["created"],
            r["size"],
            "yes" if r["recorded"] else "no",
            r["base_image"],
        )
    Console().print(table)
