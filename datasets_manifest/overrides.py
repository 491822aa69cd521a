"""The overrides file: reviewed, per-clip corrections of a dataset's annotation sheet.

A YAML mapping from clip id to the fields to replace, each entry with a reason::

    sub04_EP12_01f:
      apex: 120
      reason: "sheet apex is '/'; apex read off the AU intensity by hand"
    028_4_1:
      exclude: true
      reason: "apex outside onset..offset"

Fields: onset, apex, offset (an integer, or null for apex), emotion, exclude. The file is a
DVC dependency of the manifest stage, so every correction is versioned and re-run.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

FIELDS = frozenset({"onset", "apex", "offset", "emotion", "exclude", "reason"})


class OverridesError(ValueError):
    """An overrides file that does not follow the format above."""


@dataclass(frozen=True)
class Override:
    clip_id: str
    values: dict[str, object]
    reason: str
    exclude: bool = False


def load_overrides(path: Path | None) -> dict[str, Override]:
    """Overrides keyed by clip id; an absent path or an empty file gives none."""
    if path is None:
        return {}
    if not path.is_file():
        raise OverridesError(f"{path}: overrides file not found")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except (yaml.YAMLError, UnicodeDecodeError) as error:
        where = getattr(error, "problem_mark", None)
        line = f" (line {where.line + 1})" if where is not None else ""
        raise OverridesError(f"{path}: not valid YAML{line}: "
                             f"{getattr(error, 'problem', None) or error}") from error
    if not isinstance(data, dict):
        raise OverridesError(f"{path}: expected a mapping from clip id to fields")
    result = {}
    for clip_id, entry in data.items():
        where = f"{path}: clip {clip_id!r}"
        if not isinstance(entry, dict):
            raise OverridesError(f"{where}: expected a mapping of fields")
        unknown = set(entry) - FIELDS
        if unknown:
            raise OverridesError(
                f"{where}: unknown fields {sorted(unknown)}; allowed {sorted(FIELDS)}")
        reason = entry.get("reason")
        if not reason:
            raise OverridesError(f"{where}: every override needs a reason")
        for key in ("onset", "offset"):
            if key in entry and not _is_int(entry[key]):
                raise OverridesError(f"{where}: {key} must be an integer")
        if "apex" in entry and entry["apex"] is not None and not _is_int(entry["apex"]):
            raise OverridesError(f"{where}: apex must be an integer or null")
        values = {k: v for k, v in entry.items() if k not in ("reason", "exclude")}
        result[str(clip_id)] = Override(str(clip_id), values, str(reason),
                                        bool(entry.get("exclude")))
    return result


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
