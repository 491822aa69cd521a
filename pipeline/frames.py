"""Reading a clip's window: image files or a video, as RGB uint8, one frame at a time.

Grey frames (SAMM, NIR) come back as three equal channels. Frames are streamed so a clip of
large frames never sits in memory whole: callers crop each frame as it arrives.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np


class ClipError(Exception):
    """A data problem with one clip (the batch goes on); ``code`` names the kind."""

    def __init__(self, clip_id: str, code: str, message: str):
        super().__init__(f"{clip_id}: {message}")
        self.clip_id, self.code, self.message = clip_id, code, message


def source_path(root: str, source: str, base: Path | None = None) -> Path:
    return (base or Path()) / root / source


def iter_frames(clip_id: str, kind: str, path: Path, frames: list[str]) -> Iterator[np.ndarray]:
    """The window's frames in order, RGB uint8 (H, W, 3)."""
    if kind == "images":
        for name in frames:
            yield read_image(clip_id, path / name)
    elif kind == "video":
        yield from _video_frames(clip_id, path, [int(f) for f in frames])
    else:
        raise ValueError(f"{clip_id}: unknown clip kind {kind!r}")


def read_image(clip_id: str, path: Path) -> np.ndarray:
    data = np.fromfile(path, np.uint8) if path.is_file() else None
    if data is None:
        raise ClipError(clip_id, "input_missing", f"frame file {path} is missing")
    image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if image is None:
        raise ClipError(clip_id, "decode_error", f"cannot decode {path} ({data.size} bytes)")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def _video_frames(clip_id: str, path: Path, indices: list[int]) -> Iterator[np.ndarray]:
    """Decode sequentially and keep the wanted indices (seeking is unreliable in mpg/mov)."""
    if not path.is_file():
        raise ClipError(clip_id, "input_missing", f"video {path} is missing")
    capture = cv2.VideoCapture(str(path))
    try:
        wanted, index = iter(indices), -1
        target = next(wanted, None)
        while target is not None:
            ok, frame = capture.read()
            index += 1
            if not ok:
                raise ClipError(clip_id, "decode_error",
                                f"{path} ends at frame {index}, before frame {target}")
            if index == target:
                yield cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
                target = next(wanted, None)
    finally:
        capture.release()


def checksum(kind: str, path: Path, frames: list[str]) -> str:
    """sha256 of the window's input bytes (each frame file, or the video file and indices)."""
    digest = hashlib.sha256()
    files = [path / name for name in frames] if kind == "images" else [path]
    for file in files:
        try:
            digest.update(file.read_bytes())
        except OSError:
            digest.update(b"<missing>")
        digest.update(b"\0")
    if kind == "video":
        digest.update(";".join(frames).encode())
    return digest.hexdigest()
