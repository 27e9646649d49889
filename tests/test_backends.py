"""The backend registry (each backend declares the options it takes, and `get_backend`
refuses any other in one line instead of dropping it) and the site config's docs."""

from __future__ import annotations

from pathlib import Path

import pytest

from arcjobs.backends import get_backend
from arcjobs.backends.compose import ComposeBackend
from arcjobs.backends.local import LocalBackend
from arcjobs.errors import UserError

pytestmark = pytest.mark.unit


def test_a_misspelt_option_is_refused_naming_the_ones_the_backend_takes(tmp_path: Path):
    with pytest.raises(UserError) as e:
        get_backend("condor", tmp_path, stie=tmp_path / "site.yaml")
    assert str(e.value) == "the condor backend takes no option 'stie' (its options: site)"


def test_an_option_of_another_backend_is_refused(tmp_path: Path):
    with pytest.raises(UserError) as e:
        get_backend("local", tmp_path, site=tmp_path / "site.yaml")
    assert str(e.value) == "the local backend takes no option 'site' (its options: none)"


def test_an_option_set_to_none_is_not_given_and_declared_ones_arrive(tmp_path: Path):
    local = get_backend("local", tmp_path, site=None)
    assert isinstance(local, LocalBackend) and local.data_root == tmp_path
    compose = get_backend("compose", tmp_path / "x" / "..", project="p")
    assert isinstance(compose, ComposeBackend) and compose.project == "p"
    assert compose.data_root == tmp_path  # absolute and normalised, as every backend's


def test_the_cluster_docs_site_tables_are_generated_from_the_site_config() -> None:
    """docs/cluster.md's two site config tables are SiteConfig's and SlurmSite's fields,
    with the descriptions the models carry."""
    from arcjobs.backends.site_doc import render_into

    docs = Path(__file__).resolve().parent.parent / "docs/cluster.md"
    text = docs.read_text()
    assert render_into(text) == text, (
        "regenerate: python -m arcjobs.backends.site_doc docs/cluster.md"
    )
    for name in ("schedd", "request_disk", "partition", "runtime"):
        assert f"| `{name}` |" in text
