"""The ``mesti`` command: one thin subcommand per library entry point."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from datasets_manifest import RECIPES

from .params import ParamsError, load_section

PARAMS = click.option("--params", "params", type=click.Path(dir_okay=False, path_type=Path),
                      default=Path("params.yaml"), show_default=True,
                      help="Knobs file; its stage section is read, defaults where absent.")


@click.group(context_settings={"show_default": True, "help_option_names": ["-h", "--help"]})
@click.version_option(package_name="mesti-mer")
def main() -> None:
    """Micro-expression preprocessing: manifests, aligned faces, MESTI stores, training."""


@main.command()
@click.argument("out_dir", type=click.Path(file_okay=False, path_type=Path))
@PARAMS
def sample(out_dir: Path, params: Path) -> None:
    """Write the synthetic sample dataset (CASME II layout) into OUT_DIR."""
    from pipeline.sample import SampleConfig, generate_sample

    clips = generate_sample(out_dir, _config(SampleConfig, params, "sample"))
    frames = sum(c.offset - c.onset + 1 for c in clips)
    click.echo(f"wrote {len(clips)} clips, {frames} frames to {out_dir}")


@main.command()
@click.argument("dataset", type=click.Choice(sorted(RECIPES)))
@click.argument("raw_root", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("out", type=click.Path(file_okay=False, path_type=Path))
@click.option("--sheet", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Annotation sheet; found under RAW_ROOT by the owners' file names if omitted.")
@click.option("--overrides", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="YAML of reviewed per-clip corrections (see datasets_manifest/overrides.py).")
@PARAMS
def manifest(dataset: str, raw_root: Path, out: Path, sheet: Path | None,
             overrides: Path | None, params: Path) -> None:
    """Read DATASET at RAW_ROOT into a validated manifest and report in OUT.

    Exits non-zero only when no clip is usable; every problem is listed in OUT/report.md.
    """
    from datasets_manifest.manifest import build_manifest
    from datasets_manifest.overrides import OverridesError
    from datasets_manifest.sheets import SheetError
    from datasets_manifest.validate import ManifestConfig

    config = _config(ManifestConfig, params, "manifest")
    try:
        counts = build_manifest(dataset, raw_root, out, sheet=sheet, overrides=overrides,
                                config=config)
    except (SheetError, OverridesError, FileNotFoundError) as error:
        raise click.ClickException(str(error)) from error
    click.echo(json.dumps({k: counts[k] for k in ("clips_found", "clips_ok", "clips_excluded")}))
    click.echo(f"report: {out / 'report.md'}")
    if not counts["clips_ok"]:
        click.echo(f"no usable clip in {raw_root}; see {out / 'report.md'}", err=True)
        sys.exit(1)


def _config(cls, params: Path, section: str):
    try:
        return load_section(cls, params, section)
    except ParamsError as error:
        raise click.ClickException(str(error)) from error
