"""The ``mesti`` command: one thin subcommand per library entry point."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from mesti.datasets_manifest import RECIPES

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
    from mesti.pipeline.sample import SampleConfig, generate_sample

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
    from mesti.datasets_manifest.manifest import build_manifest
    from mesti.datasets_manifest.overrides import OverridesError
    from mesti.datasets_manifest.sheets import SheetError
    from mesti.datasets_manifest.validate import ManifestConfig

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


def cluster_options(command):
    """The options that say where tasks run; they change no output."""
    for option in reversed([
        click.option("--scheduler", metavar="ADDRESS",
                     help="Connect to a running Dask scheduler (tcp://host:8786)."),
        click.option("--scheduler-file", type=click.Path(dir_okay=False),
                     help="Connect through a Dask scheduler file (dask-jobqueue, dask-mpi)."),
        click.option("--workers", type=int, default=None,
                     help="LocalCluster worker processes [default: one per core]; "
                          "0 runs in this process without Dask."),
        click.option("--jobqueue", metavar="NAME",
                     help="Submit workers as batch jobs with dask-jobqueue (slurm, pbs, sge, "
                          "lsf, ...), configured by Dask's jobqueue.yaml."),
        click.option("--jobs", type=int, default=1, help="Batch jobs to submit with --jobqueue."),
        click.option("--progress/--no-progress", default=True, help="Show a progress bar."),
    ]):
        command = option(command)
    return command


def stage_outputs(command):
    """The options that say where a stage reports and when it fails."""
    for option in reversed([
        click.option("--metrics", type=click.Path(dir_okay=False, path_type=Path),
                     help="Write the stage metrics (JSON) here."),
        click.option("--failures", type=click.Path(dir_okay=False, path_type=Path),
                     help="Write the failures table (CSV: clip, stage, code, message, "
                          "attempts) here."),
        click.option("--max-failure-fraction", type=click.FloatRange(0, 1), default=0.5,
                     help="Fail the stage (after writing everything) when more clips fail."),
    ]):
        command = option(command)
    return command


def _run_stage(run, *args, metrics, failures, max_failure_fraction, scheduler, scheduler_file,
               workers, progress, jobqueue, jobs) -> None:
    """Call a stage's library function with the cluster and report options; print metrics."""
    from mesti.pipeline.run import ClusterOptions, StageFailed, StageOutputs

    cluster = ClusterOptions(scheduler, scheduler_file, workers, progress, jobqueue, jobs)
    try:
        result = run(*args, cluster, StageOutputs(metrics, failures, max_failure_fraction))
    except StageFailed as error:
        raise click.ClickException(str(error)) from error
    click.echo(json.dumps(result, indent=2))


@main.command()
@click.argument("manifest_csv", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("store", type=click.Path(file_okay=False, path_type=Path))
@PARAMS
@stage_outputs
@cluster_options
def faces(manifest_csv: Path, store: Path, params: Path, **options) -> None:
    """Detect, align and equalise the faces of every clip of MANIFEST_CSV into STORE (zarr).

    A clip that cannot be processed (missing or broken frames, no face, several faces) is
    recorded in the failures table and the rest goes on.
    """
    from mesti.pipeline.faces import FacesConfig
    from mesti.pipeline.run import run_faces

    _run_stage(run_faces, manifest_csv, store, _config(FacesConfig, params, "faces"), **options)


@main.command()
@click.argument("faces_store", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("store", type=click.Path(file_okay=False, path_type=Path))
@PARAMS
@stage_outputs
@cluster_options
def modalities(faces_store: Path, store: Path, params: Path, **options) -> None:
    """Compute MESTI, dynamic images and the apex frame of every clip into STORE (zarr)."""
    from mesti.pipeline.run import run_modalities
    from mesti.pipeline.stages import ModalitiesConfig

    config = _config(ModalitiesConfig, params, "modalities")
    _run_stage(run_modalities, faces_store, store, config, **options)


@main.command()
@click.argument("store")
@click.argument("clip")
@click.argument("out", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--faces", "faces_store",
              help="Faces store for the crops [default: the one the modality store was made "
                   "from, or a store of that name beside it; without one, pooled images only].")
@click.option("--image", "images", multiple=True, default=("mesti", "dynamic_raw"),
              help="Pooled images to draw (repeatable); an unknown name is an error.")
def show(store: str, clip: str, out: Path, faces_store: str | None,
         images: tuple[str, ...]) -> None:
    """Draw CLIP's pooled images with their scales and, with its faces store, the onset, apex
    and offset crops and the apex-onset difference. OUT is .png, .pdf or .svg."""
    from mesti.pipeline.show import show_clip

    try:
        written, note = show_clip(store, clip, out, faces_store, images)
    except (ValueError, KeyError) as error:  # StoreError is a ValueError
        raise click.ClickException(str(error)) from error
    if note:
        click.echo(note, err=True)
    click.echo(written)


@main.command()
@click.argument("stores", nargs=-1, required=True)
@click.argument("out_dir", type=click.Path(file_okay=False, path_type=Path))
@PARAMS
@click.option("--modality", "modalities", multiple=True,
              help="Train once per modality (repeatable) into OUT_DIR/<modality> and write "
                   "OUT_DIR/comparison.md [default: params.yaml's train.modality, into OUT_DIR].")
@click.option("--progress/--no-progress", default=True,
              help="Show a progress bar: folds x epochs, with the time left.")
def train(stores: tuple[str, ...], out_dir: Path, params: Path, modalities: tuple[str, ...],
          progress: bool) -> None:
    """Train and evaluate MEGANet on modality STORES (several form a composite) into OUT_DIR.

    A store is a directory, an exported .zip, or an http(s) URL of either.
    """
    from mesti.train.run import TrainConfig, compare_modalities, run_training

    config = _config(TrainConfig, params, "train")
    locations = list(stores)
    if modalities:
        click.echo(compare_modalities(locations, out_dir, config, list(modalities), progress))
        return
    metrics = run_training(locations, out_dir, config, progress)
    click.echo(json.dumps({k: metrics[k] for k in ("UF1", "UAR", "ACC", "WF1", "clips",
                                                   "folds", "seconds")}, indent=2))


def _config(cls, params: Path, section: str):
    try:
        return load_section(cls, params, section)
    except (ParamsError, ValueError) as error:
        raise click.ClickException(str(error)) from error


from .cache_cli import cache  # noqa: E402

main.add_command(cache)
