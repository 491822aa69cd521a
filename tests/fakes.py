"""Tiny fake datasets in the owners' real layouts, for recipe and validation tests."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import cv2
import numpy as np
from mesti.datasets_manifest.manifest import build_manifest
from mesti.pipeline.sample.generator import SampleConfig, generate_sample
from openpyxl import Workbook

_JPEG = cv2.imencode(".jpg", np.full((8, 8, 3), 128, np.uint8))[1].tobytes()
_BMP = cv2.imencode(".bmp", np.full((8, 8, 3), 128, np.uint8))[1].tobytes()


def frames(folder: Path, names: Iterable[str]) -> None:
    """Write a valid tiny image under each name (JPEG or BMP by suffix)."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / name).write_bytes(_BMP if name.endswith(".bmp") else _JPEG)


def xlsx(path: Path, header: Sequence[object], rows: Iterable[Sequence[object]],
         preamble: Iterable[Sequence[object]] = ()) -> Path:
    book = Workbook()
    sheet = book.active
    for line in preamble:
        sheet.append(list(line))
    sheet.append(list(header))
    for row in rows:
        sheet.append(list(row))
    path.parent.mkdir(parents=True, exist_ok=True)
    book.save(path)
    return path


CASME2_HEADER = ["Subject", "Filename", None, "OnsetFrame", "ApexFrame", "OffsetFrame", None,
                 "Action Units", "Estimated Emotion"]
SAMM_HEADER = ["Subject", "Filename", "Inducement Code", "Onset Frame", "Apex Frame",
               "Offset Frame", "Duration", "Micro", "Action Units", "Estimated Emotion",
               "Objective Classes", "Notes"]
SAMM_PREAMBLE = [["SAMM micro-movement FACS codes"], *[[f"key line {i}"] for i in range(11)],
                 ["/ = or", "? = unsure offset"]]
CASME3_HEADER = ["Subject", "Filename", "Onset", "Apex", "Offset", "AU", "Objective class",
                 "emotion"]


def casme2_clip(root: Path, subject: int, name: str, first: int, last: int,
                tree: str = "CASME2_RAW_selected", prefix: str = "img") -> Path:
    folder = root / tree / f"sub{subject:02d}" / name
    frames(folder, (f"{prefix}{n}.jpg" for n in range(first, last + 1)))
    return folder


def samm_clip(root: Path, subject: int, name: str, first: int, last: int) -> Path:
    folder = root / "SAMM" / f"{subject:03d}" / name
    frames(folder, (f"{subject:03d}_{n:05d}.jpg" for n in range(first, last + 1)))
    return folder


def smic_clip(root: Path, subject: int, label: str, index: int, first: int, last: int) -> Path:
    folder = root / "HS" / f"s{subject}" / "micro" / label / f"s{subject}_{label[:2]}_{index:02d}"
    frames(folder, (f"image{n:06d}.bmp" for n in range(first, last + 1)))
    return folder


def casme3_clip(root: Path, subject: int, name: str, first: int, last: int) -> Path:
    folder = root / "part_A" / f"spNO.{subject}" / name / "color"
    frames(folder, (f"{n}.jpg" for n in range(first, last + 1)))
    return folder


def sample_dataset(root: Path, **config) -> Path:
    """The synthetic sample (``root/raw``) with its CASME II manifest (``root/manifest``)."""
    generate_sample(root / "raw", SampleConfig(**config))
    build_manifest("casme2", root / "raw", root / "manifest")
    return root
