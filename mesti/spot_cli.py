"""``mesti spot-*``: spotting in long videos (pipeline/spotting/, datasets_manifest/*_lv.py).

Registered on the main command by :func:`register`. Bad input (a spots file, a manifest, a
sheet) is one line naming the file and the problem, as everywhere in ``mesti``.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from .cli_errors import DATA, USAGE, UserError
from .params import PARAMS
from .params import command_config as _config

LONG_DATASETS = ("casme2_lv", "casme3_lv", "samm_lv")


@click.command("spot-eval")
@click.argument("spots_csv", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("manifests", nargs=-1, required=True,
                type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--out", "out_json", type=click.Path(dir_okay=False, path_type=Path),
              help="Also write the counts and scores (JSON) here.")
@click.option("--table", "out_md", type=click.Path(dir_okay=False, path_type=Path),
              help="Also write the table (markdown) here.")
def spot_eval(spots_csv: Path, manifests: tuple[Path, ...], out_json: Path | None,
              out_md: Path | None) -> None:
    """Score SPOTS_CSV (video, onset, offset, type, score) against the truth of the
    long-video MANIFESTS (folders written by mesti spot-manifest) by the MEGC rule: IoU >= 0.5,
    counts summed over the videos of each dataset; micro, macro and both, and overall."""
    from mesti.pipeline.spotting.evaluation import (
        SpotError,
        as_json,
        evaluate,
        read_intervals,
        read_truth,
        table,
    )

    try:
        result = evaluate(read_truth(manifests), read_intervals(spots_csv))
    except SpotError as error:
        raise UserError(str(error), DATA) from error
    text = table(result)
    for path, content in ((out_json, json.dumps(as_json(result), indent=2) + "\n"),
                          (out_md, text)):
        if path:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(content)
    click.echo(text, nl=False)


@click.command("spot-manifest")
@click.argument("dataset", type=click.Choice(LONG_DATASETS))
@click.argument("raw_root", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("out", type=click.Path(file_okay=False, path_type=Path))
@click.option("--sheet", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Spotting sheet; found under RAW_ROOT by the owners' file names if omitted.")
@click.option("--absolute-paths", is_flag=True, default=False,
              help="Write the frames root absolute [default: relative to OUT].")
@PARAMS
def spot_manifest(dataset: str, raw_root: Path, out: Path, sheet: Path | None,
                  absolute_paths: bool, params: Path) -> None:
    """Read DATASET's long videos at RAW_ROOT and its spotting sheet into OUT: videos.csv,
    intervals.csv, problems.csv, report.md, counts.json (params.yaml's manifest section
    gives max_missing_fraction). Exits 1 when no video is usable."""
    from mesti.datasets_manifest.manifest import build_long_manifest
    from mesti.datasets_manifest.validate import ManifestConfig

    config = _config(ManifestConfig, params, "manifest")
    try:
        counts = build_long_manifest(dataset, raw_root, out, sheet=sheet,
                                     max_missing_fraction=config.max_missing_fraction,
                                     absolute_paths=absolute_paths)
    except FileNotFoundError as error:
        raise UserError(str(error), DATA) from error
    if not counts["videos_ok"]:
        raise UserError(f"{raw_root}: no usable {dataset} video; see {out / 'report.md'}", DATA)
    click.echo(json.dumps({k: counts[k] for k in ("videos_ok", "intervals_ok", "micro",
                                                  "macro")}))
    click.echo(f"report: {out / 'report.md'}")


@click.command("spot-sample")
@click.argument("out_dir", type=click.Path(file_okay=False, path_type=Path))
@PARAMS
def spot_sample(out_dir: Path, params: Path) -> None:
    """Write the synthetic long-video sample (CAS(ME)^2 layout and workbook) into OUT_DIR."""
    from mesti.pipeline.spotting.config import SpottingConfig
    from mesti.pipeline.spotting.synthetic import generate_long_sample

    config = _config(SpottingConfig, params, "spotting")
    events = generate_long_sample(out_dir, config.sample)
    kinds = {k: sum(e.kind == k for e in events) for k in ("micro", "macro", "blink",
                                                           "head_turn")}
    click.echo(f"wrote {config.sample.videos} videos of {config.sample.seconds:g} s to "
               f"{out_dir}: {json.dumps(kinds)}")


@click.command("spot-series")
@click.argument("manifest", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("store", type=click.Path(file_okay=False, path_type=Path))
@PARAMS
@click.option("--metrics", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the stage metrics (JSON) here; timings go beside it "
                   "(.timing.json).")
@click.option("--failures", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the failed videos (CSV: video, code, message) here.")
def spot_series(manifest: Path, store: Path, params: Path, metrics: Path | None,
                failures: Path | None) -> None:
    """Write the aligned face track and per-region flow and strain series of every video of
    the long-video MANIFEST (a mesti spot-manifest folder) into STORE (zarr), one video after
    the other, streamed in time chunks."""
    from mesti.pipeline.spotting.config import SpottingConfig
    from mesti.pipeline.spotting.stage import run_series

    config = _config(SpottingConfig, params, "spotting")
    if not (manifest / "videos.csv").is_file():
        raise UserError(f"{manifest}: no videos.csv; not a long-video manifest folder "
                        "(mesti spot-manifest writes one)", USAGE)
    try:
        result = run_series(manifest, store, config.series, metrics, failures)
    except ValueError as error:  # a store of another kind
        raise UserError(str(error), DATA) from error
    click.echo(json.dumps(result, indent=2))
    if not result["videos_ok"]:
        raise UserError(f"{manifest}: no video gave a series (see the failures table)", DATA)


@click.command("spot")
@click.argument("store", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("out_dir", type=click.Path(file_okay=False, path_type=Path))
@PARAMS
@click.option("--manifest", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Long-video manifest folder: score the spots (metrics.json, evaluation.md) "
                   "and draw its truth in the figures.")
@click.option("--figures/--no-figures", default=True, help="Draw figures/<video>.png.")
@click.option("--learned", is_flag=True, default=False,
              help="The learned spotter instead, trained under leave-one-subject-out on the "
                   "truth of --manifest (params.yaml spotting.learned); no figures.")
def spot(store: Path, out_dir: Path, params: Path, manifest: Path | None,
         figures: bool, learned: bool) -> None:
    """Spot micro- and macro-expressions in every video of the spotting STORE (no training:
    region-wise peaks over thresholds from each video's own statistics) into
    OUT_DIR/spots.csv (video, onset, offset, type, score)."""
    from mesti.pipeline.spotting.config import SpottingConfig
    from mesti.pipeline.spotting.evaluation import SpotError
    from mesti.pipeline.spotting.stage import run_learned, run_spotting

    config = _config(SpottingConfig, params, "spotting")
    if learned and manifest is None:
        raise UserError("--learned trains on the truth of --manifest; give one", USAGE)
    try:
        result = run_learned(store, manifest, out_dir, config.learned) if learned else \
            run_spotting(store, out_dir, config.spotter, manifest, figures)
    except (SpotError, ValueError) as error:
        raise UserError(str(error), DATA) from error
    both = result.get("evaluation", {}).get("overall", {})
    click.echo(json.dumps({k: v for k, v in result.items() if k not in ("evaluation", "folds")}
                          | {f"f1_{t}": both[t]["f1"] for t in both}))


def register(main: click.Group) -> None:
    """Add the spotting commands to ``main``."""
    for command in (spot_eval, spot_manifest, spot_sample, spot_series, spot):
        main.add_command(command)
