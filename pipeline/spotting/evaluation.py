"""The MEGC spotting evaluation: IoU >= 0.5 true positives, counts summed per dataset.

The rule (MEGC 2019-2023 spotting task): a spotted interval is a true positive when its
intersection over union with a ground-truth interval is at least 0.5. Precision, recall
and F1 come from the counts summed over all videos of a dataset (never averaged per
video), for micro-expressions, macro-expressions and both; "overall" sums the counts over
datasets the same way.

Choices the rule leaves open, stated here:

- Intervals are inclusive frame ranges ``[onset, offset]``: ``[1, 5]`` holds 5 frames, and
  ``[1, 5]`` and ``[5, 9]`` share one frame. IoU = shared frames / frames in either.
- Matching is one to one: a spotted interval is a true positive for at most one truth
  interval and a truth interval is found by at most one spot. TP is the size of a maximum
  matching among the pairs with IoU >= 0.5 (found by augmenting paths, so it does not
  depend on the order of the rows). Counting per truth interval "any spot with IoU >= 0.5"
  (the MEGC 2019 baseline's script) lets one spot cover two truths, and then FP = spots -
  TP can go negative; per-spot counting lets two spots find one truth. Neither happens here.
- Types are matched separately: a micro spot can only find a micro truth. "both" sums the
  micro and macro counts (TP, spots, truths), as the MEGC result tables' overall column does.
- P is 0 when nothing was spotted and R is 0 when there is nothing to find; F1 is 0 when
  TP is 0.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

TYPES = ("micro", "macro")
THRESHOLD = 0.5
OVERALL = "overall"
SPOT_COLUMNS = ("video", "onset", "offset", "type", "score")


class SpotError(ValueError):
    """A spots or truth file that cannot be evaluated: names the file, line and problem."""


@dataclass(frozen=True)
class Interval:
    """One interval of one video: inclusive frame numbers and micro or macro."""

    video: str
    onset: int
    offset: int
    type: str
    score: float = 1.0


@dataclass(frozen=True)
class Counts:
    """True positives, spotted intervals and truth intervals, with the scores they give."""

    tp: int = 0
    spotted: int = 0
    truth: int = 0

    def __add__(self, other: Counts) -> Counts:
        return Counts(self.tp + other.tp, self.spotted + other.spotted,
                      self.truth + other.truth)

    @property
    def precision(self) -> float:
        return self.tp / self.spotted if self.spotted else 0.0

    @property
    def recall(self) -> float:
        return self.tp / self.truth if self.truth else 0.0

    @property
    def f1(self) -> float:
        if self.tp == 0:
            return 0.0
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r)

    def as_dict(self) -> dict[str, float | int]:
        return {"tp": self.tp, "fp": self.spotted - self.tp, "fn": self.truth - self.tp,
                "spotted": self.spotted, "truth": self.truth,
                "precision": round(self.precision, 6), "recall": round(self.recall, 6),
                "f1": round(self.f1, 6)}


def iou(a: tuple[int, int], b: tuple[int, int]) -> float:
    """Intersection over union of two inclusive frame intervals."""
    shared = min(a[1], b[1]) - max(a[0], b[0]) + 1
    if shared <= 0:
        return 0.0
    union = (a[1] - a[0] + 1) + (b[1] - b[0] + 1) - shared
    return shared / union


def true_positives(spots: Sequence[tuple[int, int]], truths: Sequence[tuple[int, int]],
                   threshold: float = THRESHOLD) -> int:
    """Size of a maximum one-to-one matching of spots to truths among pairs with IoU >= 0.5."""
    edges = [[j for j, t in enumerate(truths) if iou(s, t) >= threshold] for s in spots]
    owner: dict[int, int] = {}  # truth index -> spot index

    def augment(i: int, seen: set[int]) -> bool:
        for j in edges[i]:
            if j in seen:
                continue
            seen.add(j)
            if j not in owner or augment(owner[j], seen):
                owner[j] = i
                return True
        return False

    return sum(augment(i, set()) for i in range(len(spots)))


def video_counts(spots: Iterable[Interval], truths: Iterable[Interval]) -> dict[str, Counts]:
    """Counts per type of one video's spots against its truth intervals."""
    spots, truths = list(spots), list(truths)
    counts = {}
    for kind in TYPES:
        s = [(i.onset, i.offset) for i in spots if i.type == kind]
        t = [(i.onset, i.offset) for i in truths if i.type == kind]
        counts[kind] = Counts(true_positives(s, t), len(s), len(t))
    return counts


def evaluate(truth: dict[str, dict[str, list[Interval]]],
             spots: Iterable[Interval]) -> dict[str, dict[str, Counts]]:
    """Counts per dataset and ``overall``, per type and ``both``.

    ``truth`` maps dataset -> video -> its truth intervals (every video of the dataset,
    including those without any interval). Spots name videos; one naming a video no dataset
    holds is an error, since its counts would silently go nowhere.
    """
    where = {}
    for dataset, videos in truth.items():
        for video in videos:
            if video in where:
                raise SpotError(f"video {video!r} is in both {where[video]} and {dataset}; "
                                "evaluate them separately")
            where[video] = dataset
    by_video: dict[str, list[Interval]] = {}
    for spot in spots:
        if spot.video not in where:
            raise SpotError(f"spotted video {spot.video!r} is in none of the datasets "
                            f"({', '.join(truth) or 'none given'})")
        by_video.setdefault(spot.video, []).append(spot)
    result: dict[str, dict[str, Counts]] = {}
    for dataset, videos in truth.items():
        totals = {kind: Counts() for kind in TYPES}
        for video, intervals in videos.items():
            for kind, counts in video_counts(by_video.get(video, []), intervals).items():
                totals[kind] = totals[kind] + counts
        result[dataset] = {**totals, "both": totals["micro"] + totals["macro"]}
    overall = {kind: Counts() for kind in (*TYPES, "both")}
    for counts in result.values():
        overall = {kind: overall[kind] + counts[kind] for kind in overall}
    result[OVERALL] = overall
    return result


def read_intervals(path: Path, columns: Sequence[str] = SPOT_COLUMNS) -> list[Interval]:
    """Intervals of a CSV with at least ``columns``; every bad row is refused by line."""
    path = Path(path)
    try:
        with path.open(newline="") as handle:
            reader = csv.DictReader(handle)
            rows = list(reader)
            header = reader.fieldnames or []
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise SpotError(f"{path}: cannot be read as CSV ({error})") from error
    missing = [c for c in columns if c not in header]
    if missing:
        raise SpotError(f"{path}: no column {', '.join(missing)} (needs {', '.join(columns)})")
    out = []
    for line, row in enumerate(rows, start=2):
        try:
            onset, offset = int(row["onset"]), int(row["offset"])
            score = float(row["score"]) if "score" in columns else 1.0
        except (TypeError, ValueError):
            raise SpotError(f"{path} line {line}: onset, offset (and score) must be numbers, "
                            f"got {row.get('onset')!r}, {row.get('offset')!r}") from None
        kind = (row["type"] or "").strip().lower()
        if kind not in TYPES:
            raise SpotError(f"{path} line {line}: type must be micro or macro, got "
                            f"{row['type']!r}")
        if offset < onset:
            raise SpotError(f"{path} line {line}: offset {offset} before onset {onset}")
        out.append(Interval(row["video"], onset, offset, kind, score))
    return out


def table(result: dict[str, dict[str, Counts]]) -> str:
    """The result as a markdown table, one row per dataset and type."""
    lines = ["| dataset | type | TP | FP | FN | precision | recall | F1 |",
             "|---|---|---:|---:|---:|---:|---:|---:|"]
    for dataset, kinds in result.items():
        for kind, c in kinds.items():
            lines.append(f"| {dataset} | {kind} | {c.tp} | {c.spotted - c.tp} | "
                         f"{c.truth - c.tp} | {c.precision:.4f} | {c.recall:.4f} | {c.f1:.4f} |")
    return "\n".join(lines) + "\n"


def as_json(result: dict[str, dict[str, Counts]]) -> dict[str, dict[str, dict]]:
    return {d: {k: c.as_dict() for k, c in kinds.items()} for d, kinds in result.items()}


def read_truth(manifests: Sequence[Path]) -> dict[str, dict[str, list[Interval]]]:
    """dataset -> video -> truth intervals, from long-video manifest folders (``mesti
    spot-manifest``: ``videos.csv`` lists every video, ``intervals.csv`` its intervals)."""
    truth: dict[str, dict[str, list[Interval]]] = {}
    for folder in map(Path, manifests):
        videos, intervals = folder / "videos.csv", folder / "intervals.csv"
        for path in (videos, intervals):
            if not path.is_file():
                raise SpotError(f"{folder}: no {path.name}; not a long-video manifest folder "
                                "(mesti spot-manifest writes one)")
        with videos.open(newline="") as handle:
            reader = csv.DictReader(handle)
            if not {"dataset", "video"} <= set(reader.fieldnames or []):
                raise SpotError(f"{videos}: needs the columns dataset and video")
            for row in reader:
                truth.setdefault(row["dataset"], {}).setdefault(row["video"], [])
        names = {v: d for d, vs in truth.items() for v in vs}
        for interval in read_intervals(intervals, ("video", "onset", "offset", "type")):
            if interval.video not in names:
                raise SpotError(f"{intervals}: video {interval.video!r} is not in {videos}")
            truth[names[interval.video]][interval.video].append(interval)
    return truth
