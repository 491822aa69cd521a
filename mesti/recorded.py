"""Which paths a ``mesti`` command writes, remembered while it runs.

An error raised without a file name (a write that met a full disk) is told against the
command's outputs, not the current folder: each command records its name and parsed
arguments in the context's meta, which click shares along the whole command line.
"""

from __future__ import annotations

from pathlib import Path

import click

# The arguments each command writes to, in the order they are named; ``export`` is
# ``mesti cache export``.
OUTPUTS = {"sample": ("out_dir",), "manifest": ("out",), "faces": ("store",),
           "modalities": ("store",), "preprocess": ("faces_store", "modalities_store"),
           "sequences": ("store",), "show": ("out",), "train": ("out_dir",),
           "predict": ("out_csv", "run_dir"), "compare": ("out_md",), "export": ("out_zip",)}
KEY = "mesti.command"


class Recorded(click.Command):
    """A command that leaves its name and parsed arguments in the context's meta."""

    def invoke(self, ctx: click.Context):
        ctx.meta[KEY] = (ctx.info_name, dict(ctx.params))
        return super().invoke(ctx)


class RecordedGroup(click.Group):
    """A group whose commands are :class:`Recorded`."""

    command_class = Recorded


def command_outputs() -> list[Path]:
    """The running (or just failed) command's output paths, as given; [] outside one."""
    context = click.get_current_context(silent=True)
    name, params = context.meta.get(KEY, (None, {})) if context else (None, {})
    return [Path(params[key]) for key in OUTPUTS.get(name, ()) if params.get(key)]
