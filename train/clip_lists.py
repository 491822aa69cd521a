"""Protocol clip lists: the exact clips (and 3-class labels) a published protocol evaluates on.

A list is data shipped with the package (``train/lists/<name>.csv``: dataset, subject, clip,
label) and applied by name (params ``train.clip_list``). Its counts per dataset, class and
subject are checked when it is read and again on the clips a run keeps, so a run either uses
exactly the list or stops, naming every listed clip it could not find and why (failed in the
faces or modalities stage, excluded by the manifest, in the store without a 3-class label, or
absent). Sources and derivations: ``train/lists/README.md``.

- ``megc2019``: the MEGC 2019 composite, 442 clips of 68 subjects (CASME II 145, SAMM 133,
  SMIC-HS 164), as published in ``datasets/combined_3_class_gt.csv`` of davidnvq/me_recognition
  and cross-checked clip for clip against ``video442Names.txt`` of christy1206/STSTNet.
- ``casme2_3class_all``: every CASME II clip the 3-class mapping keeps on the 2014-05-08
  coding sheet (147): the list's 145 plus sub04/EP12_01f and sub05/EP09_05f, which the MEGC
  list drops (apex "/" and apex equal to onset; both disgust, so negative).
"""

from __future__ import annotations

import csv
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

LIST_DIR = Path(__file__).parent / "lists"
CLASSES = ("negative", "positive", "surprise")

# (clips, subjects, clips per class) of each dataset a list covers.
EXPECTED: dict[str, dict[str, tuple[int, int, dict[str, int]]]] = {
    "megc2019": {
        "casme2": (145, 24, {"negative": 88, "positive": 32, "surprise": 25}),
        "samm": (133, 28, {"negative": 92, "positive": 26, "surprise": 15}),
        "smic": (164, 16, {"negative": 70, "positive": 51, "surprise": 43}),
    },
    "casme2_3class_all": {
        "casme2": (147, 24, {"negative": 90, "positive": 32, "surprise": 25}),
    },
}
NAMES = ("none", *EXPECTED)


class ClipListError(ValueError):
    """A clip list that a set of stores cannot meet, or a shipped list that is damaged."""


@dataclass(frozen=True)
class ListedClip:
    dataset: str
    subject: str
    clip: str
    label: str

    @property
    def key(self) -> tuple[str, str]:
        return clip_key(self.dataset, self.subject, self.clip)


def clip_key(dataset: str, subject: str, clip: str) -> tuple[str, str]:
    """One spelling for a clip in a list and in a store, whichever naming either uses.

    CASME II: the lists name the folder (EP02_01f) under its subject; the manifest's clip id
    is subject_folder (sub01_EP02_01f). SAMM: both use the folder name (006_1_2). SMIC-HS:
    the lists write s01_ne_01 and s01_sur_01; the folders are s1_ne_01 and s1_sur_01 (or
    s1_su_01 in the fixtures): subject and index are read as numbers, the class by prefix.
    """
    if dataset == "casme2":
        number = re.sub(r"\D", "", subject)
        prefix = f"sub{int(number):02d}_" if number else ""
        return dataset, clip if clip.startswith(prefix) and prefix else f"{prefix}{clip}"
    if dataset == "smic":
        match = re.fullmatch(r"s0*(\d+)_(ne|po|su)[a-z]*_0*(\d+)", clip)
        if match:
            return dataset, f"s{int(match[1])}_{match[2]}_{int(match[3]):02d}"
    return dataset, clip


def load_list(name: str) -> list[ListedClip]:
    """The rows of a named list, checked against its published counts."""
    if name not in EXPECTED:
        raise ClipListError(f"unknown clip list {name!r}; known: {', '.join(NAMES)}")
    path = LIST_DIR / f"{name}.csv"
    with path.open(newline="") as handle:
        rows = [ListedClip(r["dataset"], r["subject"], r["clip"], r["label"])
                for r in csv.DictReader(handle)]
    found = counts([(r.dataset, r.subject, r.label) for r in rows])
    if found != EXPECTED[name]:
        raise ClipListError(f"{path}: counts {found} differ from the published {EXPECTED[name]}")
    if len({r.key for r in rows}) != len(rows):
        raise ClipListError(f"{path}: a clip is listed twice")
    return rows


def counts(rows: list[tuple[str, str, str]]) -> dict[str, tuple[int, int, dict[str, int]]]:
    """(clips, subjects, clips per class) per dataset of (dataset, subject, label) rows."""
    result = {}
    for dataset in sorted({r[0] for r in rows}):
        mine = [r for r in rows if r[0] == dataset]
        result[dataset] = (len(mine), len({r[1] for r in mine}),
                           dict(sorted(Counter(r[2] for r in mine).items())))
    return result


def select(name: str, datasets: np.ndarray, subjects: np.ndarray, clip_ids: np.ndarray,
           labels: list[str], stores: list[str]) -> np.ndarray:
    """Indices (in table order) of the clips the list keeps; every listed clip of the
    stores' datasets must be present with the listed label.

    ``subjects`` are the store's subject names (without the dataset prefix); ``labels`` the
    clips' 3-class names. Raises :class:`ClipListError` naming every missing or relabelled
    clip, and why each is missing, when the stores cannot meet the list.
    """
    rows = load_list(name)
    covered = set(EXPECTED[name])
    present = set(datasets.tolist())
    foreign = sorted(present - covered)
    if foreign:
        raise ClipListError(f"clip list {name} covers {sorted(covered)}; the stores also hold "
                            f"{foreign}")
    wanted = [r for r in rows if r.dataset in present]
    where = {clip_key(d, s, c): i for i, (d, s, c) in
             enumerate(zip(datasets, subjects, clip_ids, strict=True))}
    problems, keep = [], []
    missing = [r for r in wanted if r.key not in where]
    for row in wanted:
        if row.key in where:
            i = where[row.key]
            if labels[i] != row.label:
                problems.append(f"{row.dataset}/{row.subject}/{row.clip}: labelled "
                                f"{labels[i]!r} in the store, {row.label!r} in the list")
            keep.append(i)
    if missing:
        reasons = why_missing(stores, missing)
        problems += [f"{r.dataset}/{r.subject}/{r.clip}: {reasons[r.key]}" for r in missing]
    if problems:
        raise ClipListError(f"the stores cannot meet clip list {name} ({len(problems)} of "
                            f"{len(wanted)} listed clips):\n  " + "\n  ".join(problems))
    kept = np.array(sorted(keep), np.int64)
    found = counts([(datasets[i], subjects[i], labels[i]) for i in kept])
    expected = {d: EXPECTED[name][d] for d in sorted(present)}
    if found != expected:  # cannot happen when every listed clip matched; kept as the contract
        raise ClipListError(f"clip list {name}: kept counts {found}, expected {expected}")
    return kept


def why_missing(stores: list[str], missing: list[ListedClip]) -> dict[tuple[str, str], str]:
    """For each missing listed clip: the stage that lost it, from the stores' own records.

    A modality store records its failures in its root attributes and names its faces store
    (``source``); the faces store does the same and names its manifest, beside which the
    manifest stage writes ``problems.csv`` (every excluded row with its reason).
    """
    from mesti.pipeline.stores.read import open_store  # the reader needs only numpy and zarr

    found: dict[tuple[str, str], str] = {}

    def note(dataset: str, subject: str, clip: str, text: str) -> None:
        found.setdefault(clip_key(dataset, subject, clip), text)

    for location in stores:
        store = open_store(location)
        dataset = str(store.attrs.get("dataset", ""))
        index = store.index
        for clip_id, subject, emotion, label in zip(index["clip_id"], index["subject"],
                                                    index["emotion"], index["label3"],
                                                    strict=True):
            if not label:
                note(dataset, str(subject), str(clip_id),
                     f"in store {location} without a 3-class label (emotion {emotion!r})")
        for failure in store.attrs.get("failures", []) or []:
            note(dataset, "", str(failure.get("clip_id")), f"failed in the modalities stage "
                 f"({failure.get('code')}: {failure.get('message')})")
        faces = store.attrs.get("source")
        try:
            faces_store = open_store(faces, require_complete=False) if faces else None
        except (OSError, ValueError, KeyError):
            faces_store = None
        if faces_store is None:
            continue
        for failure in faces_store.attrs.get("failures", []) or []:
            note(dataset, "", str(failure.get("clip_id")), f"failed in the faces stage "
                 f"({failure.get('code')}: {failure.get('message')})")
        manifest = faces_store.attrs.get("source")
        problems = Path(manifest).parent / "problems.csv" if manifest else None
        if problems is not None and problems.is_file():
            with problems.open(newline="") as handle:
                for row in csv.DictReader(handle):
                    if row.get("action") == "excluded":
                        note(dataset, row.get("subject", ""), row.get("clip_id", ""),
                             f"excluded by the manifest ({row.get('code')}: {row.get('detail')})")
    return {r.key: found.get(r.key, "absent: in no store, failure table or manifest report")
            for r in missing}


if __name__ == "__main__":  # python -m mesti.train.clip_lists: the counts README quotes
    for list_name in EXPECTED:
        listed = load_list(list_name)
        print(f"{list_name}: {len(listed)} clips, "
              f"{len({(r.dataset, r.subject) for r in listed})} subjects")
        for name, (clips, people, per_class) in counts(
                [(r.dataset, r.subject, r.label) for r in listed]).items():
            print(f"  {name}: {clips} clips, {people} subjects, {per_class}")
