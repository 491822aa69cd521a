"""Stores carry their source dataset's name, licence terms and citation: root attributes,
the export's MANIFEST.json and `mesti cache info`."""

import json
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner
from mesti.datasets_manifest import RECIPES
from mesti.datasets_manifest.licences import LICENCES, SYNTHETIC, licence
from mesti.pipeline.stores.read import open_store

from mesti.cli import main


@pytest.mark.parametrize("kind", sorted(RECIPES))
def test_every_recipe_has_terms_and_its_docstring_citation(kind: str) -> None:
    terms = licence(kind)
    assert terms == LICENCES[kind] and terms["terms"]
    if terms["citation"]:  # the lab's own videos have none
        first_author = terms["citation"].split(",")[0]
        assert first_author in RECIPES[kind].__doc__
    assert "unknown" in licence("somewhere")["terms"]


def test_sample_stores_carry_the_synthetic_terms(small_stores: Path) -> None:
    for kind in ("faces", "modalities"):
        assert open_store(small_stores / f"{kind}.zarr").attrs["licence"] == SYNTHETIC
    with zipfile.ZipFile(small_stores / "export" / "modalities.zip") as archive:
        assert json.loads(archive.read("MANIFEST.json"))["licence"] == SYNTHETIC
    result = CliRunner().invoke(main, ["cache", "info",
                                       str(small_stores / "export" / "modalities.zip")])
    assert result.exit_code == 0, result.output
    assert SYNTHETIC["name"] in result.output and SYNTHETIC["terms"] in result.output
