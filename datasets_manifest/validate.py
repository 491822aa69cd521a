"""Turn a recipe's scan into manifest rows, collecting every problem before reporting.

Rules (each one reported with the clip it concerns):

- onset or offset not a number, onset > offset, or no frame of the window on disk:
  the clip is excluded.
- window frames beyond the first or last frame on disk: the window is clamped to the
  frames that exist (the sheets name frames the owners never shipped).
- missing or unreadable frames inside the window: they are left out and listed; the clip
  is excluded when more than ``max_missing_fraction`` of the window is gone or fewer than
  ``min_frames`` remain.
- apex outside onset..offset: apex unset (the modality stage's apex policy decides).
  Apex on a missing frame: moved to the nearest present frame.
- unknown emotion: excluded (fix it with an override). Empty emotion: kept, unlabelled.
- duplicate clip id: the later row is excluded.
- overrides are applied first and reported as such.
"""

from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass, replace

from .frames import unreadable_reason
from .overrides import Override
from .records import Candidate, ClipRecord, Problem, Scan


@dataclass(frozen=True)
class ManifestConfig:
    """Knobs of the manifest stage (params.yaml section ``manifest``)."""

    max_missing_fraction: float = 0.1
    min_frames: int = 3
    check_frame_headers: bool = True

    def __post_init__(self) -> None:
        if not 0 <= self.max_missing_fraction < 1:
            raise ValueError(f"max_missing_fraction must be in [0, 1), "
                             f"got {self.max_missing_fraction}")
        if self.min_frames < 1:
            raise ValueError(f"min_frames must be at least 1, got {self.min_frames}")


def validate(scan: Scan, overrides: dict[str, Override],
             config: ManifestConfig) -> tuple[list[ClipRecord], list[Problem]]:
    """Manifest rows for the usable clips of ``scan`` and every problem found on the way."""
    problems = list(scan.problems)
    records: list[ClipRecord] = []
    seen: dict[str, Candidate] = {}
    known_ids = {c.clip_id for c in scan.clips}
    for clip_id in sorted(set(overrides) - known_ids):
        problems.append(Problem(clip_id, "-", "override_unknown_clip", "ignored",
                                "the overrides file names a clip the dataset does not have"))
    for candidate in scan.clips:
        def report(code: str, action: str, detail: str, c: Candidate = candidate) -> None:
            problems.append(Problem(c.clip_id, c.subject, code, action, detail))  # type: ignore[arg-type]

        if candidate.clip_id in seen:
            first = seen[candidate.clip_id]
            report("duplicate_clip_id", "excluded",
                   f"sheet row {candidate.sheet_row} repeats the clip id of sheet row "
                   f"{first.sheet_row} ({first.source})")
            continue
        seen[candidate.clip_id] = candidate
        override = overrides.get(candidate.clip_id)
        if override is not None:
            if override.exclude:
                report("override", "excluded", override.reason)
                continue
            notes = {k: v for k, v in candidate.notes.items() if k not in override.values}
            candidate = replace(candidate, **override.values, notes=notes)  # type: ignore[arg-type]
            changed = ", ".join(f"{k}={v}" for k, v in override.values.items())
            report("override", "override", f"{changed}: {override.reason}")
        record = _check_clip(scan, candidate, config, report)
        if record is not None:
            records.append(record)
    return records, problems


def _check_clip(scan: Scan, c: Candidate, config: ManifestConfig, report) -> ClipRecord | None:
    row = f"sheet row {c.sheet_row}: " if c.sheet_row else ""
    if not c.frames:
        report("no_frames", "excluded", f"{c.source} holds no frames")
        return None
    for key in ("onset", "offset"):
        if getattr(c, key) is None:
            report(f"{key}_invalid", "excluded", f"{row}{key} {c.notes.get(key, 'missing')}")
            return None
        if key in c.notes:
            report(f"{key}_unsure", "kept", f"{row}{key} {c.notes[key]}")
    if "apex" in c.notes:
        if c.apex is None:
            report("apex_invalid", "fixed",
                   f"{row}apex {c.notes['apex']}; apex unset (the apex policy decides)")
        else:
            report("apex_unsure", "kept", f"{row}apex {c.notes['apex']}")
    if c.onset > c.offset:
        report("onset_after_offset", "excluded", f"onset {c.onset} is after offset {c.offset}")
        return None
    emotion = c.emotion.strip().lower()
    if emotion and emotion not in scan.labels.known:
        report("unknown_label", "excluded",
               f"emotion '{c.emotion}' is not one of {sorted(scan.labels.known)}")
        return None

    first, last = min(c.frames), max(c.frames)
    onset, offset = max(c.onset, first), min(c.offset, last)
    if onset > offset:
        report("window_not_on_disk", "excluded",
               f"window {c.onset}..{c.offset} lies outside the frames on disk ({first}..{last})")
        return None
    if (onset, offset) != (c.onset, c.offset):
        report("window_clamped", "fixed",
               f"window {c.onset}..{c.offset} names frames not on disk ({first}..{last}); "
               f"clamped to {onset}..{offset}")

    window = range(onset, offset + 1)
    numbers = [n for n in window if n in c.frames]
    missing = [n for n in window if n not in c.frames]
    if c.kind == "images" and config.check_frame_headers:
        folder = scan.root / c.source
        bad = {n: unreadable_reason(folder / c.frames[n]) for n in numbers}
        bad = {n: why for n, why in bad.items() if why}
        if bad:
            listed = "; ".join(f"{c.frames[n]}: {why}" for n, why in sorted(bad.items())[:10])
            report("frames_unreadable", "fixed",
                   f"{len(bad)} unreadable frame file(s) left out of the window ({listed})")
            numbers = [n for n in numbers if n not in bad]
            missing = sorted(missing + list(bad))
    fraction = len(missing) / len(window)
    if len(numbers) < config.min_frames:
        report("too_few_frames", "excluded",
               f"{len(numbers)} frame(s) in the window; at least {config.min_frames} needed")
        return None
    if fraction > config.max_missing_fraction:
        report("frames_missing", "excluded",
               f"{len(missing)} of {len(window)} window frames missing ({_spans(missing)}), "
               f"over max_missing_fraction={config.max_missing_fraction}")
        return None
    if missing:
        report("frames_missing", "kept",
               f"{len(missing)} of {len(window)} window frames missing ({_spans(missing)}); "
               f"the {len(numbers)} present frames are kept in order")

    apex = c.apex
    if apex is not None and not onset <= apex <= offset:
        report("apex_outside_window", "fixed",
               f"apex {apex} is outside {onset}..{offset}; apex unset (the apex policy decides)")
        apex = None
    if apex is not None and apex not in numbers:
        nearest = _nearest(numbers, apex)
        report("apex_frame_missing", "fixed", f"apex frame {apex} is missing; moved to {nearest}")
        apex = nearest
    if apex is not None and apex in (onset, offset):
        which = "onset" if apex == onset else "offset"
        report("apex_at_boundary", "kept", f"apex {apex} equals the {which}")

    label3, label5 = scan.labels.labels(emotion)
    return ClipRecord(
        dataset=scan.dataset, subject=c.subject, clip_id=c.clip_id, root=str(scan.root),
        source=c.source, kind=c.kind, frames=[c.frames[n] for n in numbers],
        frame_numbers=numbers, onset=onset, apex=apex, offset=offset, emotion=emotion,
        label3=label3, label5=label5, action_units=c.action_units,
        fps=c.fps if c.fps is not None else scan.fps,
    )


def _nearest(numbers: list[int], target: int) -> int:
    i = bisect_left(numbers, target)
    options = numbers[max(0, i - 1): i + 1]
    return min(options, key=lambda n: (abs(n - target), n))


def _spans(numbers: list[int]) -> str:
    """'3-5, 9' for [3, 4, 5, 9]."""
    spans: list[str] = []
    for n in sorted(numbers):
        if spans and int(spans[-1].split("-")[-1]) == n - 1:
            spans[-1] = f"{spans[-1].split('-')[0]}-{n}"
        else:
            spans.append(str(n))
    return ", ".join(spans)
