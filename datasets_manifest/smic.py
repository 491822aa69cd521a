"""SMIC-HS: the high-speed part of the Spontaneous Micro-expression Corpus.

Li, Pfister, Huang, Zhao, Pietikäinen. "A Spontaneous Micro-expression Database:
Inducement, Collection and Baseline." IEEE FG 2013.
Licence: academic use under the owners' release agreement; not redistributable.

Layout (``root`` is HS, or the folder holding it)::

    HS/s1/micro/negative/s1_ne_01/image0123456.bmp

100 fps; 16 subjects (s1-s20 without s7, s10, s16, s17); 164 clips. There is no sheet and no
apex: the label is the folder (negative, positive, surprise) and each folder holds exactly
the onset..offset window, so onset and offset are its first and last frame numbers.
"""

from __future__ import annotations

import re
from pathlib import Path

from ._common import clip_frames
from .records import Candidate, LabelMap, Problem, Scan, safe_id

NAME = "smic"
FPS = 100.0
CLASSES = ("negative", "positive", "surprise")

LABELS = LabelMap(known=frozenset(CLASSES), three={c: c for c in CLASSES}, five={})


def prepare(root: Path, sheet: Path | None = None) -> Scan:
    """Read a SMIC-HS folder into candidate clips; ``sheet`` must be None (there is none)."""
    if sheet is not None:
        raise ValueError("SMIC-HS has no annotation sheet: its labels are its folders")
    root = Path(root)
    images = root / "HS" if (root / "HS").is_dir() else root
    subjects = sorted((p for p in images.iterdir() if p.is_dir() and re.fullmatch(r"s\d+", p.name)),
                      key=lambda p: int(p.name[1:]))
    if not subjects:
        raise FileNotFoundError(f"{images}: no subject folders s1, s2, ...")
    scan = Scan(NAME, images, FPS, LABELS)
    for subject in subjects:
        micro = subject / "micro"
        if not micro.is_dir():
            scan.problems.append(Problem("-", subject.name, "no_micro_folder", "ignored",
                                         f"{subject.relative_to(images)} has no micro/ folder"))
            continue
        for label_dir in sorted(p for p in micro.iterdir() if p.is_dir()):
            for folder in sorted(p for p in label_dir.iterdir() if p.is_dir()):
                clip_id = safe_id(folder.name)
                frames = clip_frames(scan, folder, clip_id, subject.name)
                scan.clips.append(Candidate(
                    subject=subject.name, clip_id=clip_id,
                    source=folder.relative_to(images).as_posix(), kind="images", frames=frames,
                    onset=min(frames) if frames else None, apex=None,
                    offset=max(frames) if frames else None, emotion=label_dir.name.lower(),
                ))
    return scan
