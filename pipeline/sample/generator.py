"""A small synthetic micro-expression dataset in the exact CASME II layout.

It exists so that ``make repro`` exercises the real CASME II recipe and every later stage
without a licensed dataset. It is synthetic: one real face photo (NASA's public-domain
"astronaut", shipped inside scikit-image) restyled into pseudo-subjects, with
micro-expression-like motions warped in at the facial regions MediaPipe's face mesh finds
on that photo. It is a plumbing and sanity dataset, not a benchmark: numbers measured on
it say nothing about real micro-expressions.

Per clip: frames rise from onset to an apex at a random position and fall to offset; the
peak displacement is 1-3 pixels, localised by Gaussian bumps around the region's
landmarks (happiness: lip corners up and out; disgust and repression: brows lowered, nose
wrinkled; surprise: brows raised, jaw dropped). Sensor noise, sub-pixel head jitter and a
slight flicker are added, and frames are written as ``imgN.jpg`` with absolute numbers.
"""

from __future__ import annotations

import io
import json
import re
import zipfile
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np
from openpyxl import Workbook

WIDTH, HEIGHT = 640, 480
SHEET_NAME = "CASME2-coding-20140508.xlsx"
IMAGE_DIR = "CASME2_RAW_selected"
TRUTH_NAME = "truth.json"


@dataclass(frozen=True)
class SampleConfig:
    """Knobs of the sample stage (params.yaml section ``sample``)."""

    seed: int = 7
    subjects: int = 8
    min_clips: int = 2
    max_clips: int = 3
    min_frames: int = 30
    max_frames: int = 60
    min_amplitude_px: float = 1.0
    max_amplitude_px: float = 3.0
    noise_sigma: float = 2.0
    jitter_px: float = 0.25
    flicker: float = 0.006
    jpeg_quality: int = 92

    def __post_init__(self) -> None:
        checks = {"subjects >= 1": self.subjects >= 1,
                  "1 <= min_clips <= max_clips": 1 <= self.min_clips <= self.max_clips,
                  "3 <= min_frames <= max_frames": 3 <= self.min_frames <= self.max_frames,
                  "0 < min_amplitude_px <= max_amplitude_px":
                      0 < self.min_amplitude_px <= self.max_amplitude_px,
                  "1 <= jpeg_quality <= 100": 1 <= self.jpeg_quality <= 100}
        bad = [rule for rule, ok in checks.items() if not ok]
        if bad:
            raise ValueError(f"invalid sample settings: {', '.join(bad)} must hold")


class SampleTargetError(FileExistsError):
    """The sample's target folder already holds something: nothing is written over it."""


# Face-mesh landmark indices and the direction each moves, in the source photo's frame
# (x right, y down). Weights scale a point's share of the motion.
MOTIONS: dict[str, list[tuple[int, tuple[float, float], float]]] = {
    "happiness": [(61, (-0.5, -1.0), 1.0), (291, (0.5, -1.0), 1.0),
                  (205, (0.0, -1.0), 0.4), (425, (0.0, -1.0), 0.4)],
    "disgust": [(105, (0.3, 1.0), 1.0), (334, (-0.3, 1.0), 1.0), (107, (0.4, 1.0), 0.8),
                (336, (-0.4, 1.0), 0.8), (129, (0.0, -1.0), 0.7), (358, (0.0, -1.0), 0.7)],
    "repression": [(105, (0.3, 1.0), 0.8), (334, (-0.3, 1.0), 0.8), (107, (0.4, 1.0), 1.0),
                   (336, (-0.4, 1.0), 1.0), (129, (0.0, -1.0), 0.5), (358, (0.0, -1.0), 0.5)],
    "surprise": [(70, (0.0, -1.0), 0.8), (105, (0.0, -1.0), 1.0), (107, (0.0, -1.0), 0.8),
                 (300, (0.0, -1.0), 0.8), (334, (0.0, -1.0), 1.0), (336, (0.0, -1.0), 0.8),
                 (152, (0.0, 1.0), 1.0), (17, (0.0, 1.0), 0.7)],
}
ACTION_UNITS = {"happiness": "6+12", "disgust": "4+9", "repression": "4+9",
                "surprise": "1+2+26"}
# One emotion per 3-class group; negative draws disgust or repression.
GROUPS = (("happiness",), ("disgust", "repression"), ("surprise",))


@dataclass(frozen=True)
class SampleClip:
    """What the generator put into one clip: the ground truth the sheet also carries."""

    subject: str
    filename: str
    onset: int
    apex: int
    offset: int
    emotion: str
    amplitude_px: float
    moving_xy: tuple[tuple[float, float], ...]
    """Frame pixels of the landmarks the motion is centred on."""


def generate_sample(out_dir: Path, config: SampleConfig = SampleConfig()) -> list[SampleClip]:
    """Write the sample dataset into ``out_dir`` and return what each clip holds.

    ``out_dir`` must be absent or an empty folder: writing into an existing dataset would
    replace its coding sheet and mix the sample's frames into its clips.
    """
    out_dir = Path(out_dir)
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        what = "a folder that is not empty" if out_dir.is_dir() else "not a folder"
        raise SampleTargetError(f"{out_dir}: is {what}; the sample is written only into a "
                                "new or empty folder (remove it or choose another)")
    rng = np.random.default_rng(config.seed)
    source = _source_photo()
    landmarks = source_landmarks(source)
    clips: list[SampleClip] = []
    grid = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float32)
    for s in range(1, config.subjects + 1):
        subject = f"sub{s:02d}"
        base, points, linear = _subject_appearance(source, landmarks, rng)
        count = int(rng.integers(config.min_clips, config.max_clips + 1))
        groups = rng.choice(len(GROUPS), size=min(count, len(GROUPS)), replace=False)
        for episode, group in enumerate(groups, start=1):
            emotion = str(rng.choice(GROUPS[group]))
            clip = _write_clip(out_dir / IMAGE_DIR / subject, subject, episode, emotion, base,
                               points, linear, grid, rng, config)
            clips.append(clip)
    _write_sheet(out_dir / SHEET_NAME, clips)
    (out_dir / TRUTH_NAME).write_text(json.dumps([asdict(c) for c in clips], indent=1) + "\n")
    return clips


def _source_photo() -> np.ndarray:
    from skimage import data  # scikit-image ships the photo; nothing is downloaded

    return data.astronaut()


def source_landmarks(image: np.ndarray) -> np.ndarray:
    """Face-mesh landmarks (468, 2) of an RGB photo, in pixels, rounded to 0.5 px.

    Rounding keeps the generated frames identical across CPUs whose float paths differ.
    """
    import mediapipe as mp

    from ..faces.align import quiet_native_logs
    with quiet_native_logs(), \
            mp.solutions.face_mesh.FaceMesh(static_image_mode=True, max_num_faces=1) as mesh:
        result = mesh.process(image)
    if not result.multi_face_landmarks:
        raise RuntimeError("MediaPipe found no face in the sample's source photo")
    h, w = image.shape[:2]
    points = np.array([(p.x * w, p.y * h) for p in result.multi_face_landmarks[0].landmark])
    return np.round(points * 2) / 2


def _subject_appearance(source: np.ndarray, landmarks: np.ndarray,
                        rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A pseudo-subject: the photo flipped, scaled, rotated, recoloured and relit.

    Returns the float32 RGB frame, the landmarks in frame pixels and the 2x2 linear part of
    the placement (to turn motion directions into frame directions).
    """
    flip = bool(rng.integers(2))
    scale = rng.uniform(2.1, 2.6)
    angle = np.deg2rad(rng.uniform(-6, 6))
    centre = landmarks.mean(axis=0)
    target = np.array([WIDTH / 2 + rng.uniform(-25, 25), HEIGHT / 2 + 20 + rng.uniform(-15, 15)])
    mirror = np.diag([-1.0, 1.0]) if flip else np.eye(2)
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    linear = scale * rotation @ mirror
    matrix = np.hstack([linear, (target - linear @ centre)[:, None]])
    frame = cv2.warpAffine(source.astype(np.float32), matrix, (WIDTH, HEIGHT),
                           flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)
    gains = rng.uniform(0.85, 1.15, size=3).astype(np.float32)
    slope = rng.uniform(-0.25, 0.25)
    light = 1 + slope * (np.arange(WIDTH, dtype=np.float32) - WIDTH / 2) / WIDTH
    frame = np.clip(frame * gains * light[None, :, None], 0, 255)
    points = landmarks @ linear.T + matrix[:, 2]
    return frame.astype(np.float32), points, linear


def _displacement(points: np.ndarray, linear: np.ndarray, emotion: str,
                  grid: np.ndarray) -> tuple[np.ndarray, tuple[tuple[float, float], ...]]:
    """Unit-peak displacement field (2, H, W) of an emotion, and the landmarks it moves."""
    interocular = np.linalg.norm(points[263] - points[33])
    sigma = 0.12 * interocular
    field = np.zeros_like(grid)
    moving = []
    for index, direction, weight in MOTIONS[emotion]:
        d = linear @ np.asarray(direction)
        d /= np.linalg.norm(d)
        x, y = points[index]
        bump = np.exp(-((grid[1] - x) ** 2 + (grid[0] - y) ** 2) / (2 * sigma**2))
        field[0] += weight * d[1] * bump
        field[1] += weight * d[0] * bump
        moving.append((round(float(x), 1), round(float(y), 1)))
    field /= np.sqrt(field[0] ** 2 + field[1] ** 2).max()
    return field.astype(np.float32), tuple(moving)


def intensity_profile(n_frames: int, apex_index: int) -> np.ndarray:
    """Motion intensity per frame: 0 at onset and offset, 1 at the apex, smooth between."""
    t = np.arange(n_frames, dtype=np.float64)
    rise = t / max(apex_index, 1)
    fall = (n_frames - 1 - t) / max(n_frames - 1 - apex_index, 1)
    s = np.where(t <= apex_index, rise, fall)
    return np.sin(np.pi / 2 * np.clip(s, 0, 1)) ** 2


def _write_clip(folder: Path, subject: str, episode: int, emotion: str, base: np.ndarray,
                points: np.ndarray, linear: np.ndarray, grid: np.ndarray,
                rng: np.random.Generator, config: SampleConfig) -> SampleClip:
    n = int(rng.integers(config.min_frames, config.max_frames + 1))
    apex_index = int(rng.integers(round(0.25 * n), round(0.75 * n)))
    onset = int(rng.integers(20, 300))
    amplitude = float(rng.uniform(config.min_amplitude_px, config.max_amplitude_px))
    filename = f"EP{episode:02d}_{int(rng.integers(1, 10)):02d}f"
    field, moving = _displacement(points, linear, emotion, grid)
    profile = intensity_profile(n, apex_index)
    jitter = np.cumsum(rng.normal(0, config.jitter_px / 3, size=(n, 2)), axis=0)
    jitter = np.clip(jitter, -config.jitter_px, config.jitter_px)
    clip_dir = folder / filename
    clip_dir.mkdir(parents=True, exist_ok=True)
    # One channel: cv2.randn takes sigma per channel and would leave channels 2 and 3 clean.
    noise = np.empty((HEIGHT, WIDTH * 3), np.float32)
    for i in range(n):
        shift = amplitude * profile[i] * field
        map_y = grid[0] - shift[0] - jitter[i, 1]
        map_x = grid[1] - shift[1] - jitter[i, 0]
        frame = cv2.remap(base, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        frame *= 1 + rng.normal(0, config.flicker)
        cv2.setRNGSeed(int(rng.integers(2**31)))  # OpenCV's generator: 3x faster, still seeded
        cv2.randn(noise, 0.0, config.noise_sigma)
        frame += noise.reshape(frame.shape)
        pixels = np.clip(frame + 0.5, 0, 255).astype(np.uint8)
        ok = cv2.imwrite(str(clip_dir / f"img{onset + i}.jpg"), pixels[..., ::-1],
                         [cv2.IMWRITE_JPEG_QUALITY, config.jpeg_quality])
        if not ok:
            raise OSError(f"could not write {clip_dir / f'img{onset + i}.jpg'}")
    return SampleClip(subject, filename, onset, onset + apex_index, onset + n - 1, emotion,
                      round(amplitude, 3), moving)


def _write_sheet(path: Path, clips: list[SampleClip]) -> None:
    """The coding sheet with CASME II's real columns, blank ones included."""
    book = Workbook()
    sheet = book.active
    sheet.append(["Subject", "Filename", None, "OnsetFrame", "ApexFrame", "OffsetFrame", None,
                  "Action Units", "Estimated Emotion"])
    for c in clips:
        sheet.append([int(c.subject[3:]), c.filename, None, c.onset, c.apex, c.offset, None,
                      ACTION_UNITS[c.emotion], c.emotion])
    buffer = io.BytesIO()
    book.save(buffer)
    _write_reproducible_zip(buffer.getvalue(), path)


def _write_reproducible_zip(data: bytes, path: Path) -> None:
    """Re-pack an .xlsx with fixed timestamps so the same seed gives the same bytes."""
    stamp = b"1980-01-01T00:00:00Z"
    with zipfile.ZipFile(io.BytesIO(data)) as source, zipfile.ZipFile(path, "w") as target:
        for item in source.infolist():
            content = source.read(item.filename)
            if item.filename == "docProps/core.xml":
                content = re.sub(rb"(<dcterms:(?:created|modified)[^>]*>)[^<]*", rb"\g<1>" + stamp,
                                 content)
            info = zipfile.ZipInfo(item.filename, date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            target.writestr(info, content)
