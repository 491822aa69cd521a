"""Frame files on disk: numbers parsed from names, and a cheap readability check."""

from __future__ import annotations

import re
from pathlib import Path

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".bmp", ".png", ".tif", ".tiff"})
VIDEO_SUFFIXES = frozenset({".mp4", ".avi", ".mov", ".mpg", ".mpeg", ".mkv", ".m4v"})
# Containers whose header frame count is exact: an AVI's index lists every frame, so fewer
# decoded frames means a truncated file. Elsewhere the count is an estimate from the duration
# (mpg, mkv, mov) or counts frames an edit list hides (mp4: a real 95-frame clip declares 98).
EXACT_COUNT = frozenset({".avi"})

_LAST_NUMBER = re.compile(r"(\d+)(?!.*\d)")

# Leading bytes of the formats the datasets ship; enough to tell an image from a stray file.
_MAGIC = {
    ".jpg": (b"\xff\xd8\xff",),
    ".jpeg": (b"\xff\xd8\xff",),
    ".bmp": (b"BM",),
    ".png": (b"\x89PNG\r\n\x1a\n",),
    ".tif": (b"II*\x00", b"MM\x00*"),
    ".tiff": (b"II*\x00", b"MM\x00*"),
}


def frame_number(name: str) -> int | None:
    """The frame number in a file name: the last run of digits in its stem.

    ``img46.jpg`` -> 46, ``reg_img46.jpg`` -> 46, ``006_05562.jpg`` -> 5562,
    ``image0123456.bmp`` -> 123456. None when the stem holds no digit.
    """
    match = _LAST_NUMBER.search(Path(name).stem)
    return int(match.group(1)) if match else None


def list_frames(folder: Path) -> tuple[dict[int, str], list[str]]:
    """Image files of a folder keyed by frame number, plus names that could not be numbered.

    A second file with an already-seen number (``img046.jpg`` beside ``img46.jpg``) is
    returned among the unnumbered names so the caller can report it.
    """
    frames: dict[int, str] = {}
    odd: list[str] = []
    for path in sorted(folder.iterdir()):
        if path.suffix.lower() not in IMAGE_SUFFIXES or not path.is_file():
            continue
        number = frame_number(path.name)
        if number is None or number in frames:
            odd.append(path.name)
        else:
            frames[number] = path.name
    return frames, odd


def unreadable_reason(path: Path) -> str | None:
    """Why an image file cannot be a frame (missing, empty, wrong leading bytes), or None.

    Reads a few bytes, not the whole image: the manifest stage must stay cheap on datasets
    of 100k frames. Decoding errors beyond the header surface in the faces stage.
    """
    try:
        with path.open("rb") as handle:
            head = handle.read(16)
    except FileNotFoundError:
        return "missing"
    except OSError as error:
        return f"cannot be opened ({error.strerror})"
    if not head:
        return "empty file"
    magic = _MAGIC.get(path.suffix.lower())
    if magic and not head.startswith(magic):
        return f"not a {path.suffix.lower().lstrip('.')} image"
    return None
