"""The synthetic sample's long-video mode: long videos with a known schedule of expressions.

Like ``pipeline/sample/generator.py`` (whose face, pseudo-subjects, motion fields and intensity
profile it reuses), it exists so that the spotting stages run end to end without a licensed
dataset, and so that the spotter can be checked on events whose place is known. Each video
is ``seconds`` long at ``fps``, written in the CAS(ME)^2 layout
(``rawpic/sNN/NN_01VVsynthetic/imgN.jpg``, from 1) with CAS(ME)^2's three-sheet workbook
(``CAS(ME)^2code_final.xlsx``), so ``mesti spot-manifest casme2_lv`` reads it.

Per video, a schedule alternates micro-expressions (``micro_seconds`` long, 0.2-0.5 s, peak
displacement ``micro_amplitude_px``) and macro-expressions (``macro_seconds``, larger
amplitude), separated by at least a second of neutral face, and adds distractors the
spotter must not report: blinks (upper eyelids down and back in about 0.15 s, 3-4 px),
slow head turns (the whole face shifted and rolled over 1-2 s and back), a slow lighting
drift (a sine of the global gain), sensor noise and JPEG. ``truth.json`` lists the events
and the distractors with their frames. It is a plumbing and sanity sample, not a benchmark.
"""

from __future__ import annotations

import io
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np
from openpyxl import Workbook

from ..sample.generator import (
    ACTION_UNITS,
    HEIGHT,
    MOTIONS,
    WIDTH,
    SampleTargetError,
    _displacement,
    _source_photo,
    _subject_appearance,
    _write_reproducible_zip,
    intensity_profile,
    source_landmarks,
)
from .config import LongSampleConfig

SHEET_NAME = "CAS(ME)^2code_final.xlsx"
FRAMES_DIR = "rawpic"
TRUTH_NAME = "truth.json"
UPPER_LIDS = (159, 145, 386, 374)  # face-mesh upper and lower lid middles (left, right)
FIRST_SUBJECT = 15                 # CAS(ME)^2's folder numbers start at s15


@dataclass(frozen=True)
class ScheduledEvent:
    """One event of a synthetic long video, in the video's frame numbers (from 1)."""

    video: str
    kind: str          # micro | macro | blink | head_turn
    onset: int
    apex: int
    offset: int
    amplitude_px: float
    emotion: str = ""


def schedule(n_frames: int, fps: float, config: LongSampleConfig,
             rng: np.random.Generator) -> list[tuple[str, int, int, int, float, str]]:
    """Events and distractors of one video: (kind, onset, apex, offset, amplitude, emotion),
    0-based frames; expressions never overlap each other and keep a second apart."""
    events = []
    gap = round(fps)
    cursor = round(1.5 * fps)
    emotions = sorted(MOTIONS)
    for i in range(config.events_per_video):
        kind = ("micro", "macro")[i % 2]
        low, high = config.micro_seconds if kind == "micro" else config.macro_seconds
        length = max(3, round(rng.uniform(low, high) * fps))
        if cursor + length + gap > n_frames:
            break
        apex = cursor + int(rng.integers(round(0.3 * length), round(0.6 * length) + 1))
        amp_low, amp_high = (config.micro_amplitude_px if kind == "micro"
                             else config.macro_amplitude_px)
        events.append((kind, cursor, apex, cursor + length - 1,
                       float(rng.uniform(amp_low, amp_high)), str(rng.choice(emotions))))
        cursor += length + gap + int(rng.integers(0, gap + 1))
    busy = [(e[1] - 3, e[3] + 3) for e in events]
    blinks = round(config.blinks_per_minute * n_frames / fps / 60)
    for _ in range(blinks * 4):
        if sum(e[0] == "blink" for e in events) >= blinks:
            break
        length = max(3, round(0.15 * fps))
        onset = int(rng.integers(0, n_frames - length))
        if any(onset <= b and onset + length >= a for a, b in busy):
            continue  # keeps the truth intervals clean: blinks fall between expressions
        busy.append((onset - 2, onset + length + 2))
        events.append(("blink", onset, onset + length // 2, onset + length - 1,
                       float(rng.uniform(3.0, 4.0)), ""))
    for _ in range(config.head_turns):
        length = round(rng.uniform(1.0, 2.0) * fps)
        onset = int(rng.integers(0, max(1, n_frames - length)))
        events.append(("head_turn", onset, onset + length // 2, onset + length - 1,
                       config.head_shift_px, ""))
    return sorted(events, key=lambda e: e[1])


def _blink_field(points: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """Unit-peak displacement (2, H, W): both upper lids down towards the lower ones."""
    field = np.zeros_like(grid)
    for upper, lower in ((UPPER_LIDS[0], UPPER_LIDS[1]), (UPPER_LIDS[2], UPPER_LIDS[3])):
        x, y = points[upper]
        sigma = max(1.0, 0.6 * float(np.linalg.norm(points[lower] - points[upper])) + 1.0)
        bump = np.exp(-((grid[1] - x) ** 2 + (grid[0] - y) ** 2) / (2 * sigma ** 2))
        field[0] += bump  # y: down
    return (field / field[0].max()).astype(np.float32)


def generate_long_sample(out_dir: Path, config: LongSampleConfig | None = None
                         ) -> list[ScheduledEvent]:
    """Write the long-video sample into ``out_dir`` (absent or empty); return its schedule."""
    config = config or LongSampleConfig()
    out_dir = Path(out_dir)
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise SampleTargetError(f"{out_dir}: is not a new or empty folder; the long-video "
                                "sample is written only into one")
    rng = np.random.default_rng(config.seed)
    source = _source_photo()
    landmarks = source_landmarks(source)
    scale = np.array([config.width / WIDTH, config.height / HEIGHT])
    grid = np.mgrid[0:config.height, 0:config.width].astype(np.float32)
    n_frames = round(config.seconds * config.fps)
    written: list[ScheduledEvent] = []
    rows, rule1, rule2 = [], [], []
    for v in range(config.videos):
        number = FIRST_SUBJECT + v
        base, points, linear = _subject_appearance(source, landmarks, rng)
        base = cv2.resize(base, (config.width, config.height), interpolation=cv2.INTER_AREA)
        points, linear = points * scale, linear * scale[:, None]
        code, name = f"01{v + 1:02d}", f"synthetic{v + 1}"
        video = f"{number}_{code}"
        folder = out_dir / FRAMES_DIR / f"s{number}" / f"{video}{name}"
        folder.mkdir(parents=True)
        plan = schedule(n_frames, config.fps, config, rng)
        fields = {e: _displacement(points, linear, e, grid)[0] for e in {p[5] for p in plan
                                                                        if p[5]}}
        blink = _blink_field(points, grid)
        _write_video(folder, base, plan, fields, blink, points, grid, n_frames, config, rng)
        rule1.append([number, f"s{number}", v + 1])
        rule2.append([code, name])
        count = 0
        for kind, onset, apex, offset, amplitude, emotion in plan:
            written.append(ScheduledEvent(video, kind, onset + 1, apex + 1, offset + 1,
                                          round(amplitude, 3), emotion))
            if kind in ("micro", "macro"):
                count += 1
                rows.append([v + 1, f"{name}_{count}", onset + 1, apex + 1, offset + 1,
                             ACTION_UNITS[emotion], emotion, f"{kind}-expression", emotion])
    _write_workbook(out_dir / SHEET_NAME, rows, rule1, rule2)
    (out_dir / TRUTH_NAME).write_text(json.dumps([asdict(e) for e in written], indent=1) + "\n")
    return written


def _write_video(folder: Path, base: np.ndarray, plan: list, fields: dict, blink: np.ndarray,
                 points: np.ndarray, grid: np.ndarray, n_frames: int,
                 config: LongSampleConfig, rng: np.random.Generator) -> None:
    centre = points.mean(axis=0)
    drift_phase = rng.uniform(0, 2 * np.pi)
    noise = np.empty((config.height, config.width * 3), np.float32)
    profiles = [(kind, onset, amplitude * intensity_profile(offset - onset + 1, apex - onset),
                 emotion) for kind, onset, apex, offset, amplitude, emotion in plan]
    for t in range(n_frames):
        shift = np.zeros_like(grid)
        dx = dy = roll = 0.0
        for kind, onset, profile, emotion in profiles:
            if not onset <= t < onset + len(profile):
                continue
            level = profile[t - onset]
            if kind in ("micro", "macro"):
                shift += level * fields[emotion]
            elif kind == "blink":
                shift += level * blink
            else:  # head_turn: profile peaks at head_shift_px
                share = level / config.head_shift_px
                dx, dy = level, 0.4 * level
                roll = np.deg2rad(config.head_roll_deg) * share
        map_x = grid[1] - shift[1]
        map_y = grid[0] - shift[0]
        if dx or roll:
            c, s = np.cos(roll), np.sin(roll)
            x0, y0 = map_x - centre[0] - dx, map_y - centre[1] - dy
            map_x, map_y = c * x0 + s * y0 + centre[0], -s * x0 + c * y0 + centre[1]
        frame = cv2.remap(base, map_x.astype(np.float32), map_y.astype(np.float32),
                          cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        frame *= 1 + config.lighting_drift * np.sin(2 * np.pi * t / n_frames + drift_phase)
        cv2.setRNGSeed(int(rng.integers(2**31)))
        cv2.randn(noise, 0.0, config.noise_sigma)
        frame += noise.reshape(frame.shape)
        pixels = np.clip(frame + 0.5, 0, 255).astype(np.uint8)
        path = folder / f"img{t + 1}.jpg"
        if not cv2.imwrite(str(path), pixels[..., ::-1],
                           [cv2.IMWRITE_JPEG_QUALITY, config.jpeg_quality]):
            raise OSError(f"could not write {path}")


def _write_workbook(path: Path, rows: list, rule1: list, rule2: list) -> None:
    """CAS(ME)^2's workbook: the codes (no header row) and the two naming-rule sheets."""
    book = Workbook()
    codes = book.active
    codes.title = "CASFEcode_final"
    for row in rows:
        codes.append(row)
    for title, content in (("naming rule1", rule1), ("naming rule2", rule2)):
        sheet = book.create_sheet(title)
        for row in content:
            sheet.append(row)
    buffer = io.BytesIO()
    book.save(buffer)
    _write_reproducible_zip(buffer.getvalue(), path)
