"""Reading a clip's window: image files or a video, decoded one frame at a time.

Each input file is read once: the bytes that give the clip's checksum are the bytes that
are decoded. Frames come in OpenCV's BGR order, callers convert only what they keep (a
224-pixel crop costs a tenth of a 640x480 frame), and grey files (SAMM, NIR) are decoded as
grey. Decoded frames are streamed, so only the clip's compressed bytes sit in memory whole.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from mesti.datasets_manifest.frames import EXACT_COUNT

from ..stores.read import SAFE_CLIP_ID

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


MAX_FRAME_PIXELS = 40_000_000  # the faces stage's default cap (knob faces.max_frame_pixels)


@dataclass(frozen=True)
class ClipInput:
    """A clip's window as read from disk, once: each image file's bytes (None where the
    file is missing), or the video's path, and the sha256 the clip's content key takes.

    The frames are decoded from these same bytes, so an image is read once for both.
    """

    clip_id: str
    kind: str
    path: Path
    frames: list[str]
    sha256: str
    data: list[np.ndarray | None] | None  # image clips only

    def iter_frames(self, max_pixels: int = MAX_FRAME_PIXELS) -> Iterator[np.ndarray]:
        """The window's frames in order: BGR uint8 (H, W, 3), or grey (H, W) in a clip
        whose onset file is a one-channel JPEG or PNG (SAMM; NIR).

        A grey clip is decoded as grey, a third of the work; a later frame of the other
        kind is converted to the onset's. A frame whose header declares more than
        ``max_pixels`` pixels fails the clip before it is decoded (a 1.5 MB all-black
        10000x10000 JPEG would otherwise cost 3 GB).
        """
        if self.kind == "video":
            yield from _video_frames(self.clip_id, self.path, [int(f) for f in self.frames],
                                     max_pixels)
            return
        grey = None
        for name, data in zip(self.frames, self.data, strict=True):
            image = decode_image(self.clip_id, self.path / name, data, max_pixels)
            grey = image.ndim == 2 if grey is None else grey
            if grey != (image.ndim == 2):
                image = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY if grey else cv2.COLOR_GRAY2BGR)
            yield image


def read_input(clip_id: str, kind: str, path: Path, frames: list[str]) -> ClipInput:
    """Read a clip's input bytes once and hash them: each frame file's bytes, or the video
    file and the frame indices, each followed by a zero byte (a missing file hashes as
    ``<missing>``, so the key never matches a complete clip's)."""
    if kind not in ("images", "video"):
        raise ValueError(f"{clip_id}: unknown clip kind {kind!r}")
    digest = hashlib.sha256()
    files = [path / name for name in frames] if kind == "images" else [path]
    data: list[np.ndarray | None] = []
    for file in files:
        try:
            content = np.fromfile(file, np.uint8)
        except OSError:
            content = None
        digest.update(b"<missing>" if content is None else content.data)
        digest.update(b"\0")
        data.append(content)
    if kind == "video":
        digest.update(";".join(frames).encode())
    return ClipInput(clip_id, kind, path, list(frames), digest.hexdigest(),
                     data if kind == "images" else None)


def iter_frames(clip_id: str, kind: str, path: Path, frames: list[str],
                max_pixels: int = MAX_FRAME_PIXELS) -> Iterator[np.ndarray]:
    """The window's frames in order (:meth:`ClipInput.iter_frames`), read from disk."""
    yield from read_input(clip_id, kind, path, frames).iter_frames(max_pixels)


def header_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from a JPEG, PNG or BMP header, without decoding; None if unknown."""
    header = _header(data)
    return header[:2] if header else None


def _header(data: bytes) -> tuple[int, int, int | None] | None:
    """(width, height, channels) from a JPEG, PNG or BMP header; channels None where the
    header does not say it plainly (BMP). None if the header is not understood.

    JPEG: the first start-of-frame marker (SOF0..SOF15 but DHT, JPG and DAC) and its
    component count; PNG: IHDR and its colour type; BMP: the info header (a negative height
    means top-down rows).
    """
    if data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) >= 26:
        channels = {0: 1, 4: 2}.get(data[25], 3)
        return (int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big"),
                channels)
    if data[:2] == b"BM" and len(data) >= 26:
        if int.from_bytes(data[14:18], "little") == 12:  # OS/2 core header: 16-bit sizes
            return (int.from_bytes(data[18:20], "little"),
                    int.from_bytes(data[20:22], "little"), None)
        width = int.from_bytes(data[18:22], "little", signed=True)
        height = int.from_bytes(data[22:26], "little", signed=True)
        return abs(width), abs(height), None
    if data[:2] == b"\xff\xd8":
        i = 2
        while i + 9 < len(data):
            if data[i] != 0xFF:
                return None
            marker = data[i + 1]
            if marker == 0xFF:  # fill byte
                i += 1
                continue
            if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:  # no length field
                i += 2
                continue
            length = int.from_bytes(data[i + 2:i + 4], "big")
            if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
                return (int.from_bytes(data[i + 7:i + 9], "big"),
                        int.from_bytes(data[i + 5:i + 7], "big"), data[i + 9])
            i += 2 + length
    return None


def read_image(clip_id: str, path: Path, max_pixels: int = MAX_FRAME_PIXELS) -> np.ndarray:
    """One frame file, decoded (:func:`decode_image`)."""
    return decode_image(clip_id, path, np.fromfile(path, np.uint8) if path.is_file() else None,
                        max_pixels)


def decode_image(clip_id: str, path: Path, data: np.ndarray | None,
                 max_pixels: int = MAX_FRAME_PIXELS) -> np.ndarray:
    """A frame file's bytes decoded: grey (H, W) when its header says one channel (a JPEG
    or PNG; libjpeg then skips the colour conversion, with the values IMREAD_COLOR puts in
    each channel), else BGR (H, W, 3). A missing, oversized, truncated or undecodable file
    is the clip's named failure."""
    if data is None:
        raise ClipError(clip_id, "input_missing", f"frame file {path} is missing")
    header = _header(data[:1 << 20].tobytes())  # the SOF follows EXIF/ICC segments
    if header is not None and header[0] * header[1] > max_pixels:
        raise ClipError(clip_id, "decode_error",
                        f"{path} is {header[0]}x{header[1]} ({header[0] * header[1] / 1e6:.0f} "
                        f"Mpx), over max_frame_pixels={max_pixels}; not decoded")
    jpeg = path.suffix.lower() in (".jpg", ".jpeg")
    if jpeg and data.size and data[-2:].tobytes() != b"\xff\xd9" and not jpeg_complete(data):
        # libjpeg decodes a truncated file into a partly grey frame without failing
        raise ClipError(clip_id, "decode_error", f"{path} is a truncated JPEG ({data.size} bytes)")
    grey = header is not None and header[2] in (1, 2)
    flag = cv2.IMREAD_GRAYSCALE if grey else cv2.IMREAD_COLOR
    image = cv2.imdecode(data, flag) if data.size else None
    if image is None:
        raise ClipError(clip_id, "decode_error", f"cannot decode {path} ({data.size} bytes)")
    return image


def jpeg_complete(data: np.ndarray) -> bool:
    """Whether a JPEG's stream reaches its end-of-image marker, found as the decoder finds it.

    libjpeg decodes a cut file into a partly grey frame with only a warning, so a truncated
    file is recognised here: the marker segments are walked by their lengths (an EXIF
    thumbnail's own end marker, inside APP1, is skipped) and each scan's entropy-coded data up
    to its next marker (0xFF followed by a byte other than 0x00, a fill 0xFF or a restart
    marker); the stream is complete when that walk meets EOI (0xFFD9) before the bytes run
    out. Bytes after EOI (padding a camera or an editor left) do not matter, as they do not
    to the decoder.
    """
    b = np.asarray(data, np.uint8).ravel()
    n, i = b.size, 2
    while i + 1 < n:
        if b[i] != 0xFF:  # stray bytes before a marker: skipped, as libjpeg skips them
            stray = np.flatnonzero(b[i:] == 0xFF)
            if stray.size == 0:
                return False
            i += int(stray[0])
            continue
        marker = int(b[i + 1])
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker == 0xD9:
            return True
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:  # no length field
            i += 2
            continue
        if i + 3 >= n:
            return False
        i += 2 + (int(b[i + 2]) << 8 | int(b[i + 3]))
        if marker != 0xDA:  # not a start of scan: the next marker follows its segment
            continue
        scan = b[i:n - 1]
        following = b[i + 1:n]
        ends = np.flatnonzero((scan == 0xFF) & (following != 0x00) & (following != 0xFF)
                              & ((following < 0xD0) | (following > 0xD7)))
        if ends.size == 0:
            return False  # the scan runs to the end of the bytes
        i += int(ends[0])
    return False


def _video_frames(clip_id: str, path: Path, indices: list[int],
                  max_pixels: int = MAX_FRAME_PIXELS) -> Iterator[np.ndarray]:
    """Decode sequentially and keep the wanted indices (seeking is unreliable in mpg/mov).

    Where the container's frame count is exact, a video that decodes to fewer frames is
    truncated and fails the clip, even when the wanted indices all came back: a truncated
    MJPEG .avi repeats an earlier frame as its last one.
    """
    if not path.is_file():
        raise ClipError(clip_id, "input_missing", f"video {path} is missing")
    capture = cv2.VideoCapture(str(path))
    try:
        width = int(capture.get(cv2.CAP_PROP_FRAME_WIDTH) or 0)
        height = int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT) or 0)
        if width * height > max_pixels:
            raise ClipError(clip_id, "decode_error",
                            f"{path} is {width}x{height}, over max_frame_pixels={max_pixels}; "
                            "not decoded")
        declared = int(capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
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
        if path.suffix.lower() in EXACT_COUNT and index + 1 < declared:
            while capture.grab():
                index += 1
            if index + 1 < declared:
                raise ClipError(clip_id, "decode_error",
                                f"{path} decodes to {index + 1} of the {declared} frames its "
                                "container declares: truncated")
    finally:
        capture.release()
