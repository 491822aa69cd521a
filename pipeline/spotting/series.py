"""The long-video store: an aligned face track and per-region flow and strain series.

One zarr v3 group per video (``cache/README.md`` layout, spotting section)::

    <video>/frame_numbers  int32 (T,)            the video's frame numbers, first..last
            found          bool (T,)             a face was tracked on this frame
            matrix         float32 (T, 2, 3)     frame -> aligned crop (flow_size pixels)
            face           uint8 (T, S, S)       the aligned grey crop the flow runs on
            flow           float32 (T, R, 2)     per region, mean flow (u, v) from frame t - k
                                                 to t, minus the nose's (head motion); the
                                                 nose row keeps its own mean
            strain         float32 (T, R)        per region, mean optical strain of that flow

``R`` regions in :data:`config.REGIONS` order, from the 68 landmarks of the first frame
with a face (brows 17-21 and 22-26, eyes 36-41 and 42-47, nose 27-35, and a square around
each mouth corner, 48 and 54). Frames before t = k, or where either frame has no face, are
NaN. Attributes: dataset, video, subject, fps, k, regions, region boxes, the first frame
with a face and the ``lost`` intervals (first and last frame number of each run without
a face), the config.

Alignment follows the faces stage: the face is found once (``faces.detect`` and
``faces.landmarks`` on the first frame that has one) and one similarity
(``faces.alignment``) is applied; with ``stabilise`` each frame's rigid landmarks are
re-fitted to the first's (``faces.stabilised``), which follows head turns. The face mesh
runs every ``track_every`` frames, in the first detection's box (enlarged 1.8 times, as
the faces stage does); where it finds nothing the face is lost until it finds one again. A
head that leaves that box for good stays lost (detecting afresh is not attempted). Flow
is ``motion.flow.tvl1_flow`` and strain ``motion.flow.strain``.

Memory does not grow with the video: frames are read one at a time, the last k + 1 crops
are kept, and every array is written ``chunk_frames`` frames at a time (one chunk), so
what is held is a chunk of each array plus one frame.
"""

from __future__ import annotations

import math
import time
from collections import deque
from dataclasses import asdict
from pathlib import Path

import cv2
import numpy as np
import zarr
from mesti.datasets_manifest.frames import list_frames

from ..faces import align as faces
from ..faces.decode import ClipError, read_image
from ..faces.landmarks68 import to_68
from ..motion.flow import TVL1Params, strain, tvl1_flow
from .config import REGIONS, SeriesConfig

KIND = "spotting"


def flow_gap(config: SeriesConfig, fps: float) -> int:
    """k: the knob, or half the average micro-expression length at ``fps`` (at least 1)."""
    return config.k or max(1, round(config.micro_seconds * fps / 2))


def region_boxes(points68: np.ndarray, side: int) -> dict[str, tuple[int, int, int, int]]:
    """(x0, y0, x1, y1), end exclusive, of each region in a crop of ``side`` pixels."""
    io = float(np.linalg.norm(points68[36:42].mean(0) - points68[42:48].mean(0)))

    def box(pts: np.ndarray, pad_x: float, pad_up: float, pad_down: float) -> tuple:
        x0, y0 = pts.min(0) - np.array([pad_x * io, pad_up * io])
        x1, y1 = pts.max(0) + np.array([pad_x * io, pad_down * io])
        lo = np.clip(np.floor([x0, y0]), 0, side - 1).astype(int)
        hi = np.clip(np.ceil([x1, y1]) + 1, lo + 1, side).astype(int)
        return int(lo[0]), int(lo[1]), int(hi[0]), int(hi[1])

    corner = 0.18
    return {"brow_left": box(points68[17:22], 0.05, 0.12, 0.12),
            "brow_right": box(points68[22:27], 0.05, 0.12, 0.12),
            "eye_left": box(points68[36:42], 0.08, 0.08, 0.08),
            "eye_right": box(points68[42:48], 0.08, 0.08, 0.08),
            "nose": box(points68[27:36], 0.05, 0.0, 0.05),
            "mouth_left": box(points68[48:49], corner, corner, corner),
            "mouth_right": box(points68[54:55], corner, corner, corner)}


def region_means(field: np.ndarray, boxes: dict) -> np.ndarray:
    """Mean of ``field`` (H, W, ...) inside each box, in REGIONS order."""
    return np.stack([field[y0:y1, x0:x1].reshape(-1, *field.shape[2:]).mean(0)
                     for x0, y0, x1, y1 in (boxes[r] for r in REGIONS)])


def lost_intervals(numbers: np.ndarray, found: np.ndarray) -> list[list[int]]:
    """[first, last] frame numbers of each run of frames without a face."""
    runs, start, previous = [], None, None
    for number, ok in zip(numbers.tolist(), found.tolist(), strict=True):
        if not ok and start is None:
            start = number
        if ok and start is not None:
            runs.append([start, previous])
            start = None
        previous = number
    if start is not None:
        runs.append([start, previous])
    return runs


class _Chunks:
    """Arrays of one video group, filled and written one chunk of frames at a time."""

    def __init__(self, group, n: int, side: int, chunk: int):
        regions = len(REGIONS)
        specs = {"frame_numbers": ((n,), np.int32, 0), "found": ((n,), bool, False),
                 "matrix": ((n, 2, 3), np.float32, np.nan),
                 "face": ((n, side, side), np.uint8, 0),
                 "flow": ((n, regions, 2), np.float32, np.nan),
                 "strain": ((n, regions), np.float32, np.nan)}
        self.arrays = {name: group.create_array(name, shape=shape, dtype=dtype,
                                                chunks=(chunk, *shape[1:]), fill_value=fill)
                       for name, (shape, dtype, fill) in specs.items()}
        self.fill = {name: fill for name, (_, _, fill) in specs.items()}
        self.chunk, self.start = chunk, 0
        self._new()

    def _new(self) -> None:
        self.buffer = {name: np.full((self.chunk, *a.shape[1:]), self.fill[name], a.dtype)
                       for name, a in self.arrays.items()}

    def put(self, t: int, **values) -> None:
        if t - self.start >= self.chunk:
            self.flush()
        for name, value in values.items():
            self.buffer[name][t - self.start] = value

    def flush(self) -> None:
        for name, array in self.arrays.items():
            stop = min(self.start + self.chunk, array.shape[0])
            array[self.start:stop] = self.buffer[name][:stop - self.start]
        self.start += self.chunk
        self._new()


def video_series(frames_dir: Path, group, fps: float, config: SeriesConfig,
                 models: faces.FaceModels, name: str = "video") -> dict:
    """Fill ``group`` (a zarr group) with one video's track and series; return its summary.

    Raises ClipError (``input_missing``, ``no_face``, ``decode_error``) for a video that
    cannot give any series, so the caller records it and goes on.
    """
    frames, _ = list_frames(frames_dir) if frames_dir.is_dir() else ({}, [])
    if not frames:
        raise ClipError(name, "input_missing", f"{frames_dir} holds no frames")
    numbers = np.arange(min(frames), max(frames) + 1, dtype=np.int32)
    k = flow_gap(config, fps)
    side = config.flow_size
    params = TVL1Params(**config.tvl1)
    to_side = np.diag([side / config.size, side / config.size])
    geometry = faces.FacesConfig(size=config.size)
    chunks = _Chunks(group, len(numbers), side, config.chunk_frames)
    ring: deque = deque(maxlen=k + 1)
    face = None  # (box, roll, first points, matrix, boxes) once found
    found_any, lost_frames, flows, decode_seconds, started = 0, 0, 0, 0.0, time.perf_counter()
    matrix, last_ok = None, False
    for t, number in enumerate(numbers.tolist()):
        crop, ok = None, False
        if number in frames:
            began = time.perf_counter()
            image = read_image(name, frames_dir / frames[number])
            decode_seconds += time.perf_counter() - began
            rgb = cv2.cvtColor(image, cv2.COLOR_GRAY2RGB if image.ndim == 2 else cv2.COLOR_BGR2RGB)
            if face is None:
                face = _first_face(rgb, models, geometry, to_side, side)
                ok = face is not None
                matrix = face[3] if ok else None
            elif t % config.track_every == 0:
                box, roll, first, clip_matrix, _ = face
                if config.stabilise:
                    fitted = faces.stabilised(clip_matrix, first, rgb, box, models, roll)
                    ok = fitted is not clip_matrix  # the clip transform itself: mesh missed
                    matrix = fitted if ok else clip_matrix
                else:
                    ok = faces.landmarks(rgb, box, models, roll) is not None
                    matrix = clip_matrix
            else:
                ok = last_ok  # between checks the face stays as last seen
            if ok:
                grey = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
                crop = faces.warp(grey, _scaled(matrix, to_side), side)
        found_any, last_ok = found_any + ok, ok
        lost_frames += face is not None and not ok
        ring.append(crop)
        values = {"frame_numbers": number, "found": ok}
        if crop is not None:
            values |= {"face": crop, "matrix": _scaled(matrix, to_side)}
        if len(ring) == k + 1 and ring[0] is not None and crop is not None:
            field = tvl1_flow(ring[0], crop, params)
            means = region_means(field, face[4])
            nose = means[REGIONS.index("nose")].copy()
            relative = means - nose
            relative[REGIONS.index("nose")] = nose
            values |= {"flow": relative, "strain": region_means(strain(field), face[4])}
            flows += 1
        chunks.put(t, **values)
    chunks.flush()
    if face is None:
        raise ClipError(name, "no_face", f"no face on any of the {len(frames)} frames of "
                                         f"{frames_dir}")
    found = np.asarray(chunks.arrays["found"][:])
    seconds = time.perf_counter() - started
    summary = {"frames": len(numbers), "frames_with_face": int(found.sum()), "flows": flows,
               "k": k, "seconds": round(seconds, 3), "decode_seconds": round(decode_seconds, 3),
               "fps_processed": round(len(numbers) / seconds, 2) if seconds else math.inf}
    group.attrs.update({"fps": fps, "k": k, "regions": list(REGIONS),
                        "boxes": {r: list(b) for r, b in face[4].items()},
                        "first_face_frame": int(numbers[int(np.argmax(found))]),
                        "lost": lost_intervals(numbers, found),
                        "config": asdict(config)})
    return summary


def _scaled(matrix: np.ndarray, to_side: np.ndarray) -> np.ndarray:
    """The alignment matrix (crop of ``size``) rescaled to the flow crop."""
    return np.hstack([to_side @ matrix[:, :2], to_side @ matrix[:, 2:]]).astype(np.float64)


def _first_face(rgb: np.ndarray, models: faces.FaceModels, geometry: faces.FacesConfig,
                to_side: np.ndarray, side: int):
    detection = faces.detect(rgb, models)
    if detection is None:
        return None
    points = faces.landmarks(rgb, detection.box, models, detection.roll)
    if points is None:
        return None
    matrix = faces.alignment(points, geometry)
    in_crop = faces.transform_points(to_68(points[:468]), _scaled(matrix, to_side))
    return detection.box, detection.roll, points, matrix, region_boxes(in_crop, side)


def open_spotting_store(path: Path):
    """The store's root group, created as a spotting store where absent."""
    root = zarr.open_group(str(path), mode="a", zarr_format=3)
    if root.attrs.get("kind") not in (None, KIND):
        raise ValueError(f"{path}: is a {root.attrs.get('kind')} store, not a spotting store")
    root.attrs["kind"] = KIND
    return root
