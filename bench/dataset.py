"""The benchmark's input: a synthetic CASME II-layout dataset and manifests of two sizes.

One dataset of ``2 * clips`` clips is generated (two clips per pseudo-subject, every clip
``frames`` frames of 640x480 JPEG) and kept under ``bench/data/`` so later runs of the same
size reuse it; generating costs about 10 ms per frame. Two manifests are cut from it: the
first ``clips`` rows (the benchmark proper) and all of them (the larger size of the
memory measurement, item 6).
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from mesti.datasets_manifest.manifest import build_manifest, read_manifest, write_manifest
from mesti.pipeline.sample.generator import SampleConfig, generate_sample

CLIPS_PER_SUBJECT = 2
DONE_MARKER = "bench-dataset.json"


@dataclass(frozen=True)
class Dataset:
    """Where the generated frames and the two manifests are."""

    root: Path
    manifest: Path          # the first ``clips`` clips
    manifest_double: Path   # all ``2 * clips`` clips
    clips: int
    frames_per_clip: int
    generate_s: float | None   # None when an earlier run's dataset was reused
    manifest_s: float          # building the full manifest (read sheet, validate, write)

    @property
    def frames(self) -> int:
        """Frames in the main manifest."""
        return self.clips * self.frames_per_clip


def sample_config(clips: int, frames: int) -> SampleConfig:
    """A sample of ``clips`` clips (rounded up to whole subjects) of exactly ``frames`` frames."""
    subjects = -(-clips // CLIPS_PER_SUBJECT)
    return SampleConfig(subjects=subjects, min_clips=CLIPS_PER_SUBJECT,
                        max_clips=CLIPS_PER_SUBJECT, min_frames=frames, max_frames=frames)


def prepare(data_dir: Path, clips: int, frames: int) -> Dataset:
    """Generate (or reuse) the dataset for ``clips`` x ``frames`` and write both manifests."""
    config = sample_config(2 * clips, frames)
    root = data_dir / f"casme2-{2 * clips}x{frames}-seed{config.seed}"
    generate_s = _generate(root, config)
    started = time.perf_counter()
    build_manifest("casme2", root / "raw", root / "manifest-all")
    manifest_s = time.perf_counter() - started
    records = read_manifest(root / "manifest-all" / "manifest.csv")
    if len(records) != 2 * clips or any(r.n_frames != frames for r in records):
        raise RuntimeError(f"{root}: expected {2 * clips} clips of {frames} frames, the "
                           f"manifest has {len(records)} (see {root}/manifest-all/report.md)")
    (root / "manifest-main").mkdir(exist_ok=True)
    write_manifest(records[:clips], root / "manifest-main" / "manifest.csv")
    return Dataset(root, root / "manifest-main" / "manifest.csv",
                   root / "manifest-all" / "manifest.csv", clips, frames, generate_s, manifest_s)


def _generate(root: Path, config: SampleConfig) -> float | None:
    """Write the frames unless a finished earlier run left them; return seconds or None.

    The marker holds the generator's configuration and is written last, so an interrupted
    generation is redone rather than half reused.
    """
    marker = root / DONE_MARKER
    wanted = json.dumps(asdict(config), sort_keys=True)
    if marker.is_file() and marker.read_text() == wanted:
        return None
    shutil.rmtree(root, ignore_errors=True)
    started = time.perf_counter()
    generate_sample(root / "raw", config)
    elapsed = time.perf_counter() - started
    marker.write_text(wanted)
    return elapsed
