"""The ``mesti`` command: one thin subcommand per library entry point.

User mistakes are messages, not tracebacks: the library raises its own exception types for
bad input (a params file, a sheet, a manifest, a store, the cluster options, a full disk),
and :class:`Commands` turns exactly those into one line naming the input and the problem,
with exit code 2 for a wrong invocation and 1 for unusable data. Any other exception is a
bug and keeps its traceback.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import click

from .cache_cli import cache
from .cli_errors import DATA, USAGE, UserError, missing_extra, user_error
from .params import PARAMS
from .params import command_config as _config
from .recorded import RecordedGroup

# The recipes' names (mesti.datasets_manifest.RECIPES), spelled out so that the command line
# imports without the recipes' readers (OpenCV, openpyxl): `mesti cache` needs the core only.
DATASETS = ("casme2", "casme3", "samm", "smic", "videos")


INTERRUPTED = 130  # 128 + SIGINT, as a shell reports a process stopped by Ctrl-C
# The commands that write stores, and the arguments naming those stores: Ctrl-C in one
# leaves them incomplete (marked so, and resumed by the next run), which is what it says.
STORE_WRITERS = {"faces": ("store",), "modalities": ("store",), "sequences": ("store",),
                 "preprocess": ("faces_store", "modalities_store")}


class Commands(RecordedGroup):
    """The command group that maps known user errors to one-line messages (see module doc)."""

    def resolve_command(self, ctx: click.Context, args: list[str]):
        """The command, or a usage error that suggests the closest commands, including
        those of a command group (``mesti verify``: did you mean ``mesti cache verify``)."""
        try:
            return super().resolve_command(ctx, args)
        except click.exceptions.NoSuchCommand as error:
            import difflib

            name = str(args[0])
            nested = {f"{group} {sub}": sub for group, command in self.commands.items()
                      if isinstance(command, click.Group) for sub in command.commands}
            words = {**{c: c for c in self.commands}, **nested}
            close = difflib.get_close_matches(name, list(words.values()), n=3, cutoff=0.6)
            ideas = [f"`{ctx.command_path} {full}`" for full, word in words.items()
                     if word in close]
            if not ideas:
                raise
            raise click.UsageError(f"No such command {name!r}. Did you mean "
                                   f"{' or '.join(ideas)}?", ctx) from error

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except click.exceptions.Exit:
            raise
        except KeyboardInterrupt:
            if "mesti.run" in ctx.meta:  # mesti train: its run folder keeps its marker
                click.echo(f"interrupted; {ctx.meta['mesti.run']} is not a finished run (it "
                           "holds UNFINISHED); train again to finish it", err=True)
                ctx.exit(INTERRUPTED)
            writes = STORE_WRITERS.get(ctx.invoked_subcommand or "")
            if writes is None:
                raise
            stores = ctx.meta.get("mesti.stores") or [name.upper() for name in writes]
            click.echo(f"interrupted; the stores are incomplete ({', '.join(map(str, stores))}); "
                       "a re-run of the same command resumes", err=True)
            ctx.exit(INTERRUPTED)
        except Exception as error:
            known = missing_extra(error, ctx.invoked_subcommand) or user_error(error)
            if known is None:
                raise
            raise known from error


@click.group(cls=Commands,
             context_settings={"show_default": True, "help_option_names": ["-h", "--help"]})
@click.version_option(package_name="mesti-mer")
@click.option("-v", "--verbose", is_flag=True, help="Keep MediaPipe's and TFLite's log lines.")
def main(verbose: bool) -> None:
    """Micro-expression preprocessing: manifests, aligned faces, MESTI stores, training."""
    if verbose:  # read by pipeline/faces/align.py, in this process and the workers it starts
        os.environ["MESTI_VERBOSE"] = "1"


@main.command()
@click.argument("out_dir", type=click.Path(file_okay=False, path_type=Path))
@PARAMS
def sample(out_dir: Path, params: Path) -> None:
    """Write the synthetic sample dataset (CASME II layout) into OUT_DIR."""
    from mesti.pipeline.sample.generator import SampleConfig, generate_sample

    clips = generate_sample(out_dir, _config(SampleConfig, params, "sample"))
    frames = sum(c.offset - c.onset + 1 for c in clips)
    click.echo(f"wrote {len(clips)} clips, {frames} frames to {out_dir}")


@main.command()
@click.argument("dataset", type=click.Choice(DATASETS))
@click.argument("raw_root", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("out", type=click.Path(file_okay=False, path_type=Path))
@click.option("--sheet", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Annotation sheet; found under RAW_ROOT by the owners' file names if omitted.")
@click.option("--overrides", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="YAML of reviewed per-clip corrections (see datasets_manifest/overrides.py).")
@click.option("--absolute-paths", is_flag=True, default=False,
              help="Write the frames root absolute [default: relative to OUT, so the manifest "
                   "moves with its data].")
@PARAMS
def manifest(dataset: str, raw_root: Path, out: Path, sheet: Path | None,
             overrides: Path | None, absolute_paths: bool, params: Path) -> None:
    """Read DATASET at RAW_ROOT into a validated manifest and report in OUT.

    Exits 1 and writes no manifest when no clip is usable; every problem is listed in
    OUT/report.md either way.
    """
    from mesti.datasets_manifest.manifest import build_manifest
    from mesti.datasets_manifest.validate import ManifestConfig

    config = _config(ManifestConfig, params, "manifest")
    try:
        counts = build_manifest(dataset, raw_root, out, sheet=sheet, overrides=overrides,
                                config=config, absolute_paths=absolute_paths)
    except FileNotFoundError as error:  # the recipes' "no frames tree / no videos here"
        raise UserError(str(error), DATA) from error
    click.echo(json.dumps({k: counts[k] for k in ("clips_found", "clips_ok", "clips_excluded")}))
    if overrides is not None:
        click.echo(_overrides_note(overrides, dataset, counts), err=True)
    click.echo(f"report: {out / 'report.md'}")


def _overrides_note(overrides: Path, dataset: str, counts: dict) -> str:
    """How many of an overrides file's fixes named a clip of the dataset; a warning when
    none did (most likely the file of another dataset, applied silently otherwise)."""
    from mesti.datasets_manifest.overrides import load_overrides

    total = len(load_overrides(overrides))
    unmatched = int(counts.get("problems", {}).get("override_unknown_clip", 0))
    matched = total - unmatched
    if total and not matched:
        return (f"warning: {overrides}: none of its {total} fixes names a {dataset} clip "
                "(an overrides file of another dataset?); nothing was corrected")
    return f"{overrides}: {matched} of {total} fixes matched a {dataset} clip" + (
        f"; {unmatched} name no clip (see the report)" if unmatched else "")


def cluster_options(command):
    """The options that say where tasks run; they change no output."""
    for option in reversed([
        click.option("--scheduler", metavar="ADDRESS",
                     help="Connect to a running Dask scheduler (tcp://host:8786)."),
        click.option("--scheduler-file", type=click.Path(dir_okay=False),
                     help="Connect through a Dask scheduler file (dask-jobqueue, dask-mpi)."),
        click.option("--workers", type=click.IntRange(min=0), default=None,
                     help="LocalCluster worker processes [default: one per core]; "
                          "0 runs in this process without Dask."),
        click.option("--jobqueue", metavar="NAME",
                     help="Submit workers as batch jobs with dask-jobqueue (slurm, pbs, sge, "
                          "lsf, ...), configured by Dask's jobqueue.yaml."),
        click.option("--jobs", type=click.IntRange(min=1), default=1,
                     help="Batch jobs to submit with --jobqueue."),
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
        click.option("--prune", is_flag=True, default=False,
                     help="Delete the store's clips that are no longer in the input (without "
                          "it they are kept on disk, unlisted, and named in the metrics)."),
    ]):
        command = option(command)
    return command


def _run_stage(run, *args, metrics, failures, max_failure_fraction, prune,
               **cluster_options) -> None:
    """Call a stage's library function with the cluster and report options; print metrics."""
    from mesti.pipeline.runner.run import StageOutputs

    result = run(*args, _cluster(**cluster_options),
                 StageOutputs(metrics, failures, max_failure_fraction), prune=prune)
    click.echo(json.dumps(result, indent=2))


def _cluster(scheduler, scheduler_file, workers, progress, jobqueue, jobs):
    """The cluster options; unusable ones fail here, before a stage opens its store."""
    from mesti.pipeline.runner.cluster import ClusterOptions, dask_client, jobqueue_cluster

    context = click.get_current_context()  # the stage's: what Ctrl-C leaves incomplete
    context.meta["mesti.stores"] = [context.params[name] for name in
                                    STORE_WRITERS.get(context.info_name or "", ())]
    cluster = ClusterOptions(scheduler, scheduler_file, workers, progress, jobqueue, jobs)
    if scheduler or scheduler_file:
        with dask_client(cluster):
            pass
    elif jobqueue:
        jobqueue_cluster(jobqueue).close()  # configured? (no job is submitted)
    return cluster


def _require_store(location: str | Path, kind: str, role: str):
    """The store at ``location``, refused by name when it is not of ``kind``."""
    from mesti.pipeline.stores.read import open_store

    store = open_store(location)
    found = store.attrs.get("kind")
    if found != kind:
        raise UserError(f"{location}: is a {found} store; {role} needs a {kind} store", USAGE)
    return store


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
    from mesti.pipeline.faces.align import FacesConfig
    from mesti.pipeline.runner.run import run_faces

    _run_stage(run_faces, manifest_csv, store, _config(FacesConfig, params, "faces"), **options)


@main.command()
@click.argument("faces_store", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("store", type=click.Path(file_okay=False, path_type=Path))
@PARAMS
@stage_outputs
@cluster_options
def modalities(faces_store: Path, store: Path, params: Path, **options) -> None:
    """Compute MESTI, dynamic images and the apex frame of every clip into STORE (zarr)."""
    from mesti.pipeline.runner.run import run_modalities
    from mesti.pipeline.runner.stages import ModalitiesConfig

    config = _config(ModalitiesConfig, params, "modalities")
    _require_store(faces_store, "faces", "mesti modalities")
    _run_stage(run_modalities, faces_store, store, config, **options)


@main.command()
@click.argument("manifest_csv", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("faces_store", type=click.Path(file_okay=False, path_type=Path))
@click.argument("modalities_store", type=click.Path(file_okay=False, path_type=Path))
@PARAMS
@click.option("--faces-metrics", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the faces metrics (JSON) here.")
@click.option("--faces-failures", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the faces failures table (CSV) here.")
@click.option("--modalities-metrics", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the modalities metrics (JSON) here.")
@click.option("--modalities-failures", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the modalities failures table (CSV) here.")
@click.option("--max-failure-fraction", type=click.FloatRange(0, 1), default=0.5,
              help="Fail (after writing everything) when more clips fail in either store.")
@click.option("--prune", is_flag=True, default=False,
              help="Delete the stores' clips that are no longer in the manifest.")
@cluster_options
def preprocess(manifest_csv: Path, faces_store: Path, modalities_store: Path, params: Path,
               faces_metrics: Path | None, faces_failures: Path | None,
               modalities_metrics: Path | None, modalities_failures: Path | None,
               max_failure_fraction: float, prune: bool, **options) -> None:
    """mesti faces and mesti modalities in one pass per clip, on one pool.

    Each clip is read, decoded and aligned once, and its modality images are computed from
    the frames in memory; the two stores are those the two commands write. A clip whose
    faces are unchanged is not decoded again (its modalities are reused, or recomputed from
    FACES_STORE when only their knobs changed).
    """
    from mesti.pipeline.faces.align import FacesConfig
    from mesti.pipeline.runner.run import StageOutputs, run_preprocess
    from mesti.pipeline.runner.stages import ModalitiesConfig

    faces_config = _config(FacesConfig, params, "faces")
    modalities_config = _config(ModalitiesConfig, params, "modalities")
    result = run_preprocess(
        manifest_csv, faces_store, modalities_store, faces_config, modalities_config,
        _cluster(**options), StageOutputs(faces_metrics, faces_failures, max_failure_fraction),
        StageOutputs(modalities_metrics, modalities_failures, max_failure_fraction),
        prune=prune)
    click.echo(json.dumps(result, indent=2))


@main.command()
@click.argument("faces_store", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("store", type=click.Path(file_okay=False, path_type=Path))
@PARAMS
@stage_outputs
@cluster_options
def sequences(faces_store: Path, store: Path, params: Path, **options) -> None:
    """Write sampled grey frames, 68-point landmarks and flows of every clip into STORE."""
    from mesti.pipeline.runner.run import run_sequences
    from mesti.pipeline.runner.sequences import SequencesConfig

    config = _config(SequencesConfig, params, "sequences")
    _require_store(faces_store, "faces", "mesti sequences")
    _run_stage(run_sequences, faces_store, store, config, **options)


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
    from mesti.pipeline.figures import show_clip

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
@click.option("--model", type=click.Choice(["meganet", "fdp", "mol"]),
              help="The network [default: params.yaml's train.model]; fdp and mol take their "
                   "knobs from the params sections of the same name.")
@cluster_options
def train(stores: tuple[str, ...], out_dir: Path, params: Path, modalities: tuple[str, ...],
          model: str | None, progress: bool, **cluster) -> None:
    """Train and evaluate a model on STORES (several form a composite) into OUT_DIR: MEGANet
    on modality stores, FDP and MOL on sequences stores.

    A store is a directory, an exported .zip, or an http(s) URL of either. Each fold is one
    task: --workers 0 (the default) trains them one after another in this process; the other
    cluster options run them as on `mesti preprocess`, with the same outputs byte for byte.
    """
    from dataclasses import replace

    if cluster["workers"] is None and not (cluster["scheduler"] or cluster["scheduler_file"]
                                           or cluster["jobqueue"]):
        cluster["workers"] = 0  # train's default: in this process
    options = _cluster(progress=progress, **cluster)

    _pin_before_torch(params)
    from mesti.train.inputs import MODEL_CONFIGS
    from mesti.train.run import TrainConfig, compare_modalities, run_training

    click.get_current_context().meta["mesti.run"] = out_dir  # named if Ctrl-C stops it
    config = _config(TrainConfig, params, "train")
    if model:
        config = replace(config, model=model)
    model_config = _config(MODEL_CONFIGS[config.model], params, config.model) \
        if config.model in MODEL_CONFIGS else None
    locations = list(stores)
    wanted = list(modalities) or [config.modality]
    kind = "modalities" if config.model == "meganet" else "sequences"
    for location in locations:
        names = _require_store(location, kind, f"mesti train --model {config.model}").names
        unknown = [m for m in wanted if m not in names] if kind == "modalities" else []
        if unknown:
            raise UserError(f"{location}: no image {', '.join(map(repr, unknown))}; it has "
                            f"{', '.join(names)} (--modality or train.modality)", USAGE)
    if modalities:
        click.echo(compare_modalities(locations, out_dir, config, list(modalities), progress,
                                      options))
        return
    metrics = run_training(locations, out_dir, config, progress, model_config, options)
    click.echo(json.dumps({k: metrics[k] for k in ("UF1", "UAR", "ACC", "WF1", "clips",
                                                   "folds", "seconds")}, indent=2))


next(p for p in train.params if p.name == "workers").help = (
    "Train the folds on a LocalCluster of this many processes [default: 0, one after another "
    "in this process without Dask].")


@main.command()
@click.argument("stores", nargs=-1, required=True)
@click.argument("run_dir", type=click.Path(file_okay=False, exists=True, path_type=Path))
@click.option("--out", "out_csv", type=click.Path(dir_okay=False, path_type=Path),
              help="Where to write the predictions [default: RUN_DIR/predictions.repro.csv].")
def predict(stores: tuple[str, ...], run_dir: Path, out_csv: Path | None) -> None:
    """Recompute a run's test predictions on CPU from its saved per-fold weights.

    STORES are the run's modality stores; RUN_DIR is a single-seed run folder (one seed_N
    folder of a several-seed run). Says whether the result equals RUN_DIR/predictions.csv
    byte for byte.
    """
    from mesti.train.compare import RunFolderError, check_finished
    from mesti.train.determinism import cpu_pinning, pin_process

    try:
        check_finished(run_dir)
    except RunFolderError as error:
        raise UserError(str(error), USAGE) from error
    for location in stores:
        _require_store(location, "modalities", "mesti predict").close()
    cpu = _run_determinism(run_dir).get("cpu", {})
    if cpu.get("pinned"):  # the kernels the run trained with, so another CPU agrees
        pin_process()
    from mesti.train.predict import predict_run

    if cpu.get("pinned"):
        cpu_pinning(cpu["threads"])
    out_csv = out_csv or run_dir / "predictions.repro.csv"
    try:
        count = predict_run(list(stores), run_dir, out_csv)
    except (OSError, ValueError) as error:
        raise click.ClickException(str(error)) from error
    original = run_dir / "predictions.csv"
    same = original.is_file() and original.read_bytes() == out_csv.read_bytes()
    click.echo(f"{count} predictions written to {out_csv}; "
               f"{'identical to' if same else 'DIFFERENT from'} {original}")


@main.command()
@click.argument("runs", nargs=-1, required=True,
                type=click.Path(file_okay=False, exists=True, path_type=Path))
@click.option("--out", "out_md", type=click.Path(dir_okay=False, path_type=Path),
              help="Also write the table here (markdown).")
def compare(runs: tuple[Path, ...], out_md: Path | None) -> None:
    """One table of finished training RUNS (folders written by `mesti train`): model, stores,
    protocol and the pooled UF1, UAR, ACC and WF1."""
    from mesti.train.compare import RunFolderError, runs_table

    try:
        table = runs_table(list(runs))
    except RunFolderError as error:
        raise UserError(str(error), USAGE) from error
    except (OSError, ValueError, KeyError) as error:
        raise click.ClickException(str(error)) from error
    if out_md:
        out_md.parent.mkdir(parents=True, exist_ok=True)
        out_md.write_text(table)
    click.echo(table)


def _pin_before_torch(params: Path) -> None:
    """Before torch is imported, the once-read CPU settings of train/determinism.py, unless
    the params file's ``train.deterministic`` is false (a broken file is reported later by
    the config's own checks)."""
    import yaml

    from mesti.train.determinism import pin_process

    try:
        section = (yaml.safe_load(params.read_text()) or {}).get("train") or {}
        wanted = section.get("deterministic", True) is not False
    except (OSError, UnicodeDecodeError, yaml.YAMLError, AttributeError):
        wanted = True
    if wanted:
        pin_process()


def _run_determinism(run_dir: Path) -> dict:
    """The determinism record of a run folder's config.json ({} when absent or unreadable)."""
    try:
        record = json.loads((run_dir / "config.json").read_text()).get("determinism")
    except (OSError, ValueError, AttributeError):
        return {}
    return record if isinstance(record, dict) else {}


main.add_command(cache)

from .spot_cli import register as _register_spotting  # noqa: E402

_register_spotting(main)
