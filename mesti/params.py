"""Stage configs from params.yaml: one section per stage, unknown keys fail."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any, TypeVar, get_type_hints

import click
import yaml

T = TypeVar("T")


DEFAULT_PARAMS = Path("params.yaml")
PARAMS = click.option("--params", "params", type=click.Path(dir_okay=False, path_type=Path),
                      default=DEFAULT_PARAMS, show_default=True,
                      help="Knobs file; its stage section is read. A file given must "
                           "exist; without the default one, all knobs keep their defaults.")


class ParamsError(ValueError):
    """A params file that cannot be read, or a section that does not match its stage's config."""


def load_section(cls: type[T], params: Path | None, section: str) -> T:
    """Build ``cls`` from ``section`` of a params file; defaults where ``params`` is None.

    A missing file, a file that is not a YAML mapping, a key the dataclass does not define,
    a value of the wrong type or out of range, is an error that names the file (and the
    section and key): a typo must never fall back to a default silently. Callers decide
    whether an absent implicit default file may mean "all defaults".
    """
    if params is None:
        return cls()
    path = Path(params)
    if not path.is_file():
        raise ParamsError(f"{path}: params file not found")
    try:
        data = yaml.safe_load(path.read_text())
    except (yaml.YAMLError, UnicodeDecodeError) as error:
        where = getattr(error, "problem_mark", None)
        line = f" (line {where.line + 1})" if where is not None else ""
        raise ParamsError(f"{path}: not valid YAML{line}: "
                          f"{getattr(error, 'problem', None) or error}") from error
    data = {} if data is None else data
    if not isinstance(data, dict):
        raise ParamsError(f"{path}: expected a mapping of stage sections, "
                          f"got a {type(data).__name__}")
    values = data.get(section)
    values = {} if values is None else values
    if not isinstance(values, dict):
        raise ParamsError(f"{path} [{section}]: expected a mapping of knobs, "
                          f"got a {type(values).__name__}")
    try:
        return from_mapping(cls, values, f"{path} [{section}]")
    except ParamsError as error:
        if path.name != "params.yaml":
            raise
        raise ParamsError(f"{error} (params.yaml holds this value; after a failed "
                          "`dvc exp run -S`, DVC leaves the -S value there)") from error


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
    try:
        return cls(**values)
    except ValueError as error:  # the config's own range checks (__post_init__)
        raise ParamsError(f"{where}: {explain(str(error), values)}") from error


def one_of(knob: str, choices: Iterable[object]) -> str:
    """A config rule's name for "``knob`` is one of ``choices``", as :func:`explain` reads it
    (use it as the key of a ``__post_init__`` check)."""
    return f"{knob} in {{{', '.join(map(str, choices))}}}"


_RULES = re.compile(r"^(?P<head>.*?: )?(?P<rules>.+) must hold$")
_CHOICE = re.compile(r"^(?P<knob>\w+) in \{(?P<choices>.*)\}$")


def explain(message: str, values: dict[str, Any]) -> str:
    """A config's "RULE, RULE must hold" message with the value each knob holds: a choice
    rule (:func:`one_of`) says the value and the choices, any other rule the values of the
    knobs it names. Other messages pass unchanged."""
    match = _RULES.match(message)
    if not match:
        return message
    parts = []
    for rule in re.split(r", (?![^{]*\})", match["rules"]):
        choice = _CHOICE.match(rule)
        if choice and choice["knob"] in values:
            parts.append(f"{choice['knob']} is {values[choice['knob']]!r}; it must be one of "
                         f"{choice['choices']}")
            continue
        given = [f"{k} is {values[k]!r}" for k in re.findall(r"[A-Za-z_]\w*", rule)
                 if k in values]
        parts.append(f"{rule} must hold" + (f" ({', '.join(given)})" if given else ""))
    return (match["head"] or "") + "; ".join(parts)


def command_config(cls: type[T], params: Path, section: str) -> T:
    """A stage's config from ``--params`` (which must exist when given); without it from
    ./params.yaml, or the defaults (said once per command on stderr) where there is none."""
    context = click.get_current_context()
    given = context.get_parameter_source("params") != click.core.ParameterSource.DEFAULT
    if not given and not params.is_file():
        meta = context.find_root().meta
        if not meta.get("told_default_params"):
            meta["told_default_params"] = True
            click.echo(f"no {params} here: every knob at its default", err=True)
        return load_section(cls, None, section)
    return load_section(cls, params, section)
