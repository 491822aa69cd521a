"""Stage configs from params.yaml: one section per stage, unknown keys fail."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, TypeVar, get_type_hints

import yaml

T = TypeVar("T")


class ParamsError(ValueError):
    """A params.yaml section that does not match its stage's config."""


def load_section(cls: type[T], params: Path | None, section: str) -> T:
    """Build ``cls`` from ``section`` of a params file; defaults where the file is absent.

    A key the dataclass does not define, or a value of the wrong type, is an error that
    names the file, section and key: a typo must never fall back to a default silently.
    """
    if params is None or not Path(params).is_file():
        return cls()
    data = yaml.safe_load(Path(params).read_text()) or {}
    return from_mapping(cls, data.get(section) or {}, f"{params} [{section}]")


def from_mapping(cls: type[T], values: dict[str, Any], where: str) -> T:
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(values) - names)
    if unknown:
        raise ParamsError(f"{where}: unknown keys {unknown}; known keys {sorted(names)}")
    hints = get_type_hints(cls)
    for key, value in values.items():
        expected = hints[key]
        if expected is float and isinstance(value, int) and not isinstance(value, bool):
            values = {**values, key: float(value)}
        elif expected in (int, float, bool, str) and (
                not isinstance(value, expected) or (expected is int and isinstance(value, bool))):
            raise ParamsError(f"{where}: {key} must be {expected.__name__}, got {value!r}")
    return cls(**values)
