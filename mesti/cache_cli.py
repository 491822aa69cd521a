"""``mesti cache``: verify, describe and export stores; each command calls one library function.

STORE is a directory, a zip file (``mesti cache export``) or a URL (``https://...``, a zip
served over HTTP, ``s3://`` or ``gs://`` with the ``cloud`` extra).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from .recorded import RecordedGroup


@click.group(cls=RecordedGroup,
             context_settings={"show_default": True, "help_option_names": ["-h", "--help"]})
def cache() -> None:
    """Check, describe and share stores (a directory, a zip file or a URL)."""


@cache.command()
@click.argument("store")
@click.option("--repair", is_flag=True, default=False,
              help="Drop every clip with a problem from the STORE folder and mark it "
                   "incomplete, so the next run of its stage recomputes them.")
def verify(store: str, repair: bool) -> None:
    """Read every chunk, check shapes, completeness and content keys of STORE.

    Lists every problem of every clip and exits 1 if there is any. With --repair the clips
    with problems are dropped (a re-run recomputes them); it exits 1 only if a problem of
    the store itself remains.
    """
    from mesti.pipeline.stores.verify import repair_store, verify_store

    problems, dropped = _call(repair_store, store) if repair else (_call(verify_store, store),
                                                                   [])
    for problem in problems:
        click.echo(str(problem))
    if problems:
        clips = {p.clip for p in problems if p.clip is not None}
        click.echo(f"{store}: {len(problems)} problem(s) in {len(clips)} clip(s)")
    if dropped:
        click.echo(f"{store}: dropped {len(dropped)} clip(s) ({', '.join(dropped)}) and marked "
                   "the store incomplete; re-run the stage that wrote it to recompute them")
        if all(p.clip is not None for p in problems):
            return
    if problems:
        sys.exit(1)
    click.echo(f"{store}: ok (every chunk read, every content key recomputed)")


@cache.command()
@click.argument("store")
@click.option("--json", "as_json", is_flag=True, default=False, help="Print JSON.")
def info(store: str, as_json: bool) -> None:
    """Describe STORE: kind, dataset, completeness, provenance, each clip's arrays."""
    from mesti.pipeline.stores.info import format_info, store_info

    described = _call(store_info, store)
    click.echo(json.dumps(described, indent=2) if as_json else format_info(described))


@cache.command()
@click.argument("store")
@click.argument("out_zip", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--verify/--no-verify", "check", default=True,
              help="Verify STORE first and refuse to export one with problems.")
def export(store: str, out_zip: Path, check: bool) -> None:
    """Write STORE as one zip file OUT_ZIP with MANIFEST.json and SHA256SUMS."""
    from mesti.pipeline.stores.export import export_store

    from .cli_errors import USAGE, UserError

    if not out_zip.parent.is_dir():
        raise UserError(f"{out_zip}: the folder {out_zip.parent} does not exist", USAGE)
    manifest = _call(export_store, store, out_zip, check=check)
    click.echo(f"wrote {out_zip}: {manifest['kind']} store, {len(manifest['clips'])} clips, "
               f"{manifest['store_files']} files, {manifest['store_bytes'] / 1e6:.1f} MB")


def _call(function, *args, **kwargs):
    """Run a library function; a location that is not a usable store is a clean error."""
    from mesti.pipeline.stores.read import StoreError

    try:
        return function(*args, **kwargs)
    except StoreError as error:
        raise click.ClickException(str(error)) from error
