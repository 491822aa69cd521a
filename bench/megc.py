"""``make bench-megc``: a MEGC 2019-shaped synthetic composite, preprocessed and trained.

    .venv/bin/python -m bench.megc                 # 442 clips, then one LOSO epoch per fold
    .venv/bin/python -m bench.megc --folds 4       # train only the first 4 folds (images/s)

Three synthetic datasets in their owners' real layouts, read by the real recipes, with the
MEGC 2019 composite's clip and subject counts and each dataset's frame size, colour and
format: CASME II 145 clips of 24 subjects, 640x480 colour JPEG; SAMM 133 clips of 28
subjects, 960x650 grey JPEG; SMIC-HS 164 clips of 16 subjects, 640x480 colour BMP. Window
lengths are drawn uniformly from ranges whose means (CASME II 67, SAMM 74, SMIC-HS 34
frames) put the three full sheets (255, 159 and 164 clips) at about 34,400 frames, the
figure counted on the real sheets; the composite's 442 clips hold about 25,100. The faces
come from pipeline.sample.generator (one photo shipped with scikit-image), so this measures cost,
not accuracy. Generated once under bench/data/megc (about 6 GB, mostly SMIC's BMPs).

Measured, on one LocalCluster for the whole run (the three datasets' ``mesti preprocess``
runs connect to it, as to any Dask deployment): the decode floor (SAMM decoded as grey, as
the pipeline decodes it), preprocessing end to end, a re-run after a modalities knob changed
(nothing decoded), then MEGANet for one epoch per LOSO fold
over the 68 subjects (training images per second on this machine's CPU, and on CUDA when
present). Prints one table; writes nothing into the repository.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Shape:
    """One dataset of the composite."""

    clips: int
    subjects: int
    size: tuple[int, int]       # width, height
    grey: bool
    suffix: str
    frames: tuple[int, int]     # window length range, uniform


SHAPES = {
    "casme2": Shape(145, 24, (640, 480), False, ".jpg", (24, 110)),
    "samm": Shape(133, 28, (960, 650), True, ".jpg", (34, 114)),
    "smic": Shape(164, 16, (640, 480), False, ".bmp", (11, 57)),
}
SEED = 2019
SAMM_EMOTION = {"happiness": "Happiness", "surprise": "Surprise", "disgust": "Disgust",
                "repression": "Anger"}
SMIC_LABEL = {"happiness": "positive", "surprise": "surprise", "disgust": "negative",
              "repression": "negative"}
DONE = "megc-dataset.json"


def say(message: str) -> None:
    print(f"[megc {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def generate(root: Path) -> dict[str, Path]:
    """Write (or reuse) the three datasets and their manifests; return the manifests."""
    from mesti.datasets_manifest.manifest import build_manifest

    wanted = json.dumps({k: vars(v) for k, v in SHAPES.items()} | {"seed": SEED},
                        sort_keys=True, default=list)
    if not ((root / DONE).is_file() and (root / DONE).read_text() == wanted):
        shutil.rmtree(root, ignore_errors=True)
        for index, (name, shape) in enumerate(SHAPES.items()):
            started = time.perf_counter()
            _write_dataset(root / name, name, shape, SEED + index)
            say(f"{name}: generated in {time.perf_counter() - started:.0f} s")
        (root / DONE).write_text(wanted)
    manifests = {}
    for name, shape in SHAPES.items():
        counts = build_manifest(name, root / name, root / f"manifest-{name}")
        if counts["clips_ok"] != shape.clips:
            raise RuntimeError(f"{name}: {counts['clips_ok']} of {shape.clips} clips in the "
                               f"manifest; see {root / f'manifest-{name}' / 'report.md'}")
        manifests[name] = root / f"manifest-{name}" / "manifest.csv"
    return manifests


def _write_dataset(out: Path, name: str, shape: Shape, seed: int) -> None:
    """Sample clips (three per generated face) rewritten into the dataset's layout."""
    import cv2
    from mesti.pipeline.sample.generator import IMAGE_DIR, SampleConfig, generate_sample
    from openpyxl import Workbook

    with tempfile.TemporaryDirectory(dir=out.parent if out.parent.exists() else None) as tmp:
        source = Path(tmp) / "sample"
        config = SampleConfig(seed=seed, subjects=-(-shape.clips // 3), min_clips=3,
                              max_clips=3, min_frames=shape.frames[0],
                              max_frames=shape.frames[1])
        clips = generate_sample(source, config)[: shape.clips]
        rows = []
        for index, clip in enumerate(clips):
            subject = index % shape.subjects + 1
            episode = index // shape.subjects + 1
            frames = sorted((source / IMAGE_DIR / clip.subject / clip.filename).glob("*.jpg"),
                            key=lambda p: int(p.stem[3:]))
            folder, names = _clip_place(out, name, subject, episode, clip, shape)
            folder.mkdir(parents=True, exist_ok=True)
            for path, frame_name in zip(frames, names, strict=True):
                image = cv2.imread(str(path))
                if shape.size != (image.shape[1], image.shape[0]):
                    scale = shape.size[1] / image.shape[0]
                    image = cv2.resize(image, None, fx=scale, fy=scale,
                                       interpolation=cv2.INTER_LINEAR)
                    pad = shape.size[0] - image.shape[1]
                    image = cv2.copyMakeBorder(image, 0, 0, pad // 2, pad - pad // 2,
                                               cv2.BORDER_REPLICATE)
                if shape.grey:
                    image = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
                cv2.imwrite(str(folder / frame_name), image, [cv2.IMWRITE_JPEG_QUALITY, 92])
            rows.append((subject, folder.name, clip))
    if name in ("casme2", "samm"):
        book = Workbook()
        sheet = book.active
        if name == "casme2":
            sheet.append(["Subject", "Filename", None, "OnsetFrame", "ApexFrame",
                          "OffsetFrame", None, "Action Units", "Estimated Emotion"])
            for subject, folder, c in rows:
                sheet.append([subject, folder, None, c.onset, c.apex, c.offset, None, "",
                              c.emotion])
            book.save(out / "CASME2-coding-20140508.xlsx")
        else:
            for line in [["SAMM micro-movement FACS codes"], *[[""]] * 11, ["/ = or"]]:
                sheet.append(line)
            sheet.append(["Subject", "Filename", "Inducement Code", "Onset Frame",
                          "Apex Frame", "Offset Frame", "Duration", "Micro", "Action Units",
                          "Estimated Emotion", "Objective Classes", "Notes"])
            for subject, folder, c in rows:
                sheet.append([subject, folder, 1, c.onset, c.apex, c.offset,
                              c.offset - c.onset + 1, "Micro - 1/2", "", SAMM_EMOTION[c.emotion],
                              "", ""])
            book.save(out / "SAMM_Micro_FACS_Codes_v2.xlsx")


def _clip_place(out: Path, name: str, subject: int, episode: int, clip,
                shape: Shape) -> tuple[Path, list[str]]:
    """The clip's folder and frame file names in the dataset's layout."""
    numbers = range(clip.onset, clip.offset + 1)
    if name == "casme2":
        folder = out / "CASME2_RAW_selected" / f"sub{subject:02d}" / f"EP{episode:02d}_01f"
        return folder, [f"img{n}{shape.suffix}" for n in numbers]
    if name == "samm":
        folder = out / "SAMM" / f"{subject:03d}" / f"{subject:03d}_{episode}_1"
        return folder, [f"{subject:03d}_{n:05d}{shape.suffix}" for n in numbers]
    label = SMIC_LABEL[clip.emotion]
    folder = out / "HS" / f"s{subject}" / "micro" / label / f"s{subject}_{label[:2]}_{episode:02d}"
    return folder, [f"image{n:06d}{shape.suffix}" for n in numbers]


def preprocess(manifests: dict[str, Path], scratch: Path, workers: int) -> dict[str, float]:
    """Decode floor and preprocessing of the three datasets on one LocalCluster."""
    from mesti.datasets_manifest.manifest import read_manifest
    from mesti.pipeline.faces.align import FacesConfig
    from mesti.pipeline.runner.cluster import ClusterOptions, dask_client
    from mesti.pipeline.runner.run import run_preprocess
    from mesti.pipeline.runner.stages import ModalitiesConfig

    from bench.tasks import decode_clip, warm_worker

    seconds = {"floor": 0.0, "preprocess": 0.0}
    started = time.perf_counter()
    with dask_client(ClusterOptions(workers=workers)) as client:
        client.run(warm_worker)
        seconds["start"] = time.perf_counter() - started
        options = ClusterOptions(scheduler=client.scheduler.address, progress=False)
        for name, manifest in manifests.items():
            records = read_manifest(manifest)
            paths = [[str(Path(r.root) / r.source / f) for f in r.frames] for r in records]
            began = time.perf_counter()
            decoded = sum(client.gather(client.map(decode_clip, paths,
                                                   grey=SHAPES[name].grey, pure=False)))
            seconds["floor"] += time.perf_counter() - began
            if decoded != sum(map(len, paths)):
                raise RuntimeError(f"{name}: {decoded} of {sum(map(len, paths))} decoded")
            began = time.perf_counter()
            metrics = run_preprocess(manifest, scratch / f"faces-{name}.zarr",
                                     scratch / f"modalities-{name}.zarr", FacesConfig(),
                                     ModalitiesConfig(), options)
            seconds["preprocess"] += time.perf_counter() - began
            seconds[f"{name} clips failed"] = metrics["faces"]["clips_failed"]
            say(f"{name}: floor and preprocess done ({metrics['faces']['clips_ok']} clips)")
        for name, manifest in manifests.items():  # a modalities knob changed, as dvc repro
            began = time.perf_counter()       # runs it: nothing decoded, modalities redone
            metrics = run_preprocess(manifest, scratch / f"faces-{name}.zarr",
                                     scratch / f"modalities-{name}.zarr", FacesConfig(),
                                     ModalitiesConfig(apex_policy="middle"), options)
            seconds["rerun"] = seconds.get("rerun", 0.0) + time.perf_counter() - began
            if metrics["faces"]["clips_ok"]:
                raise RuntimeError(f"{name}: the re-run recomputed faces: {metrics['faces']}")
    seconds["total with start and stop"] = time.perf_counter() - started
    return seconds


def train_epochs(stores: list[Path], folds: int | None) -> dict[str, float]:
    """MEGANet, one epoch per LOSO fold (the first ``folds``), default knobs otherwise."""
    import torch
    from mesti.train import protocols
    from mesti.train.data import load_clips, to_tensor
    from mesti.train.run import TrainConfig, fit_fold

    config = TrainConfig(epochs=1, save_weights=False)
    table = load_clips([str(s) for s in stores], config.modality, config.labels)
    chosen = protocols.loso(table.subjects)[:folds]
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    x, y = to_tensor(table.images, config.input_size), torch.from_numpy(table.labels)
    images, started = 0, time.perf_counter()
    for fold in chosen:
        fit_fold(config, x, y, fold, 0, len(table.classes), device, lambda row: None)
        images += len(fold.train)
    elapsed = time.perf_counter() - started
    return {"device": str(device), "folds": len(chosen),
            "all folds": len(protocols.loso(table.subjects)), "clips": len(table.labels),
            "subjects": len(set(table.subjects)), "seconds": elapsed,
            "images per second": images / elapsed, "input size": config.input_size}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.megc",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--workers", type=int, default=None,
                        help="LocalCluster workers [default: one per core]")
    parser.add_argument("--folds", type=int, default=None,
                        help="train only the first FOLDS LOSO folds [default: all]")
    parser.add_argument("--data-dir", type=Path, default=BENCH_DIR / "data" / "megc")
    args = parser.parse_args(argv)
    import os

    workers = args.workers or os.cpu_count() or 1
    args.data_dir.mkdir(parents=True, exist_ok=True)
    manifests = generate(args.data_dir)
    from mesti.datasets_manifest.manifest import read_manifest

    frames = sum(r.n_frames for m in manifests.values() for r in read_manifest(m))
    clips = sum(len(read_manifest(m)) for m in manifests.values())
    with tempfile.TemporaryDirectory(dir=args.data_dir, prefix="scratch-") as scratch:
        scratch = Path(scratch)
        seconds = preprocess(manifests, scratch, workers)
        training = train_epochs([scratch / f"modalities-{n}.zarr" for n in SHAPES],
                                args.folds)
    print(f"\nMEGC-shaped composite: {clips} clips, {frames} frames; {workers} workers\n")
    print("| measure | value |\n|---|---|")
    print(f"| decode floor (SAMM as grey), three datasets | {seconds['floor']:.1f} s |")
    print(f"| preprocessing (mesti preprocess), three datasets | "
          f"{seconds['preprocess']:.1f} s ({frames / seconds['preprocess']:.0f} frames/s) |")
    print(f"| preprocessing / decode floor | {seconds['preprocess'] / seconds['floor']:.2f}x |")
    print(f"| modalities knob re-run (apex_policy: middle) / preprocessing | "
          f"{seconds['rerun']:.1f} s / {seconds['preprocess']:.1f} s = "
          f"{100 * seconds['rerun'] / seconds['preprocess']:.0f}% |")
    print(f"| one pool for the run: start and warm-up / whole run | {seconds['start']:.1f} s / "
          f"{seconds['total with start and stop']:.1f} s |")
    print(f"| clips failed in faces | "
          f"{sum(v for k, v in seconds.items() if k.endswith('failed'))} |")
    print(f"| MEGANet training, {training['input size']}px, one epoch per fold, "
          f"{training['folds']} of {training['all folds']} LOSO folds ({training['subjects']} "
          f"subjects), {training['device']} | {training['images per second']:.1f} images/s "
          f"({training['seconds']:.0f} s) |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
