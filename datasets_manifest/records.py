"""What a recipe hands to validation, and what validation hands to the next stage.

A recipe reads one dataset's folder and sheet into :class:`Candidate` clips plus the
problems it met while reading (rows without folders, unparsable cells). Validation turns
candidates into :class:`ClipRecord` rows, the manifest, and more :class:`Problem` entries.
Every problem names a clip and says what was done about it, so a report can be reviewed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

Action = Literal["excluded", "fixed", "kept", "ignored", "override"]

SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def safe_id(*parts: object) -> str:
    """Join parts into an id that is safe as one path component on every file system."""
    text = "_".join(str(p) for p in parts if p is not None and str(p) != "")
    text = re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-.")
    if not text or not SAFE_ID.match(text):
        raise ValueError(f"cannot make a path-safe clip id from {parts!r}")
    return text


@dataclass(frozen=True)
class LabelMap:
    """A dataset's emotion vocabulary and its mapping to the 3- and 5-class protocols.

    An emotion that is known but absent from a protocol's mapping is dropped from that
    protocol (label None); an emotion outside ``known`` is an annotation fault.
    """

    known: frozenset[str]
    three: dict[str, str]
    five: dict[str, str]

    def labels(self, emotion: str) -> tuple[str | None, str | None]:
        return self.three.get(emotion), self.five.get(emotion)


@dataclass
class Problem:
    """One finding about one clip (or about the dataset when ``clip_id`` is '-')."""

    clip_id: str
    subject: str
    code: str
    action: Action
    detail: str


@dataclass
class Candidate:
    """A clip as a recipe found it: annotation values parsed, frames listed from disk.

    ``frames`` maps every frame number found in the clip's folder (parsed from the file
    name) to its file name; for a video it maps frame indices to themselves as text.
    ``onset``/``offset`` of None mean the sheet gave no usable number.
    """

    subject: str
    clip_id: str
    source: str
    kind: Literal["images", "video"]
    frames: dict[int, str]
    onset: int | None
    apex: int | None
    offset: int | None
    emotion: str
    action_units: str = ""
    sheet_row: int | None = None
    notes: dict[str, str] = field(default_factory=dict)
    """Per field ('onset', 'apex', 'offset'), what was odd about the sheet cell."""
    fps: float | None = None
    """The clip's own frame rate where it has one (a video's); else the dataset's."""


@dataclass
class Scan:
    """Everything a recipe read from one dataset root."""

    dataset: str
    root: Path
    fps: float
    labels: LabelMap
    clips: list[Candidate] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    sheet: Path | None = None


@dataclass
class ClipRecord:
    """One manifest row: one usable clip with its onset..offset window in temporal order."""

    dataset: str
    subject: str
    clip_id: str
    root: str
    source: str
    kind: str
    frames: list[str]
    frame_numbers: list[int]
    onset: int
    apex: int | None
    offset: int
    emotion: str
    label3: str | None
    label5: str | None
    action_units: str
    fps: float

    @property
    def n_frames(self) -> int:
        return len(self.frames)

    def frame_paths(self, base: Path | None = None) -> list[Path]:
        """Absolute-or-relative paths of the window's frame files (image clips only)."""
        folder = (base or Path()) / self.root / self.source
        return [folder / name for name in self.frames]
