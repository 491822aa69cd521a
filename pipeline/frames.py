"""Reading a clip's window: image files or a video, as BGR uint8, one frame at a time.

Frames come in OpenCV's BGR order: callers convert only what they keep (a 224-pixel crop
costs a tenth of a 640x480 frame). Grey frames (SAMM, NIR) come back as three equal
channels. Frames are streamed so a clip of large frames never sits in memory whole.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

from .reader import SAFE_CLIP_ID

FAILURE_CODES = {
    "input_missing": "a frame file or video is not there",
    "decode_error": "a frame cannot be decoded (empty, truncated, not an image, size differs)",
    "annotation_invalid": "the manifest row cannot describe a clip (empty window, unsafe path)",
    "no_face": "no face on the onset frame (or a frame too small to hold one)",
    "several_faces": "more than one face of comparable size on the onset frame",
    "face_drift": "the face left the frame, or moved over max_drift, by the apex or last frame",
    "detector_crash": "the face detector raised an error on this clip",
    "infrastructure": "the clip's worker died on every attempt; the clip is quarantined",
    "upstream_missing": "a clip listed in the faces store has no readable group there",
    "upstream_key_mismatch": "the faces clip's attributes no longer match its content key",
}


class ClipError(Exception):
    """A data problem with one clip (the batch goes on); ``code`` is one of FAILURE_CODES."""

    def __init__(self, clip_id: str, code: str, message: str):
        if code not in FAILURE_CODES:
            raise ValueError(f"unknown failure code {code!r}")
        super().__init__(f"{clip_id}: {message}")
        self.clip_id, self.code, self.message = clip_id, code, message


def clip_folder(clip_id: str, root: str, source: str, frames: list[str], kind: str) -> Path:
    """The clip's folder (or video), refusing any manifest path that leaves ``root``.

    Manifests, like the sheets they come from, are untrusted: a ``source`` of ``../..`` or
    an absolute path, a frame name holding a separator, or a clip id that is not one safe
    path component (it names the clip's group in the store), is an error, never followed.
    The check reads the text, so symbolic links a user placed inside ``root`` still work.
    """
    if not SAFE_CLIP_ID.fullmatch(clip_id):
        raise ClipError(clip_id, "annotation_invalid",
                        f"clip id {clip_id!r} is not a single safe path component")
    base = Path(os.path.normpath(Path(root).absolute()))
    path = Path(os.path.normpath(base / source))
    if not source or Path(source).is_absolute() or not path.is_relative_to(base) or path == base:
        raise ClipError(clip_id, "annotation_invalid", f"source {source!r} leaves {root}")
    if not frames:
        raise ClipError(clip_id, "annotation_invalid", "the window holds no frame")
    if kind == "images" and any(Path(f).name != f or f in (".", "..") for f in frames):
        raise ClipError(clip_id, "annotation_invalid", "a frame name is not a plain file name")
    return path


def iter_frames(clip_id: str, kind: str, path: Path, frames: list[str]) -> Iterator[np.ndarray]:
    """The window's frames in order, BGR uint8 (H, W, 3)."""
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
    jpeg = path.suffix.lower() in (".jpg", ".jpeg")
    if jpeg and data.size and data[-2:].tobytes() != b"\xff\xd9":
        # libjpeg decodes a truncated file into a partly grey frame without failing
        raise ClipError(clip_id, "decode_error", f"{path} is a truncated JPEG ({data.size} bytes)")
    image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if image is None:
        raise ClipError(clip_id, "decode_error", f"cannot decode {path} ({data.size} bytes)")
    return image


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
                yield frame
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
