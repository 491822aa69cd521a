"""The command line's errors: what ``mesti`` and ``mesti cache`` both raise and translate.

:class:`UserError` is one line naming the input and the problem, with exit code ``USAGE``
(2, a wrong invocation) or ``DATA`` (1, unusable data); :func:`user_error` and
:func:`missing_extra` turn the library's own exception types into one. Both command modules
import this one, and it imports neither of them.
"""

from __future__ import annotations

import errno
import shutil
import sys
from pathlib import Path

import click

from .recorded import command_outputs

USAGE, DATA = 2, 1


class UserError(click.ClickException):
    """A one-line message and its exit code (2: usage, 1: data)."""

    def __init__(self, message: str, exit_code: int = DATA):
        super().__init__(" ".join(str(message).split()))
        self.exit_code = exit_code


# Which extra of `pip install 'mesti-mer[EXTRA]'` brings each package the core lacks.
EXTRAS = {name: "pipeline" for name in ("mediapipe", "cv2", "numba", "dask", "distributed",
                                        "skimage", "openpyxl", "tqdm", "matplotlib", "dvc")}
EXTRAS |= {"torch": "train", "dvclive": "train", "dask_jobqueue": "cluster"}
TRAINING = ("train", "predict", "compare")  # their tqdm and matplotlib come with [train]


def missing_extra(error: BaseException, command: str | None) -> UserError | None:
    """The one-line message for a package of an extra that is not installed, else None."""
    if not isinstance(error, ModuleNotFoundError) or not error.name:
        return None
    package = error.name.partition(".")[0]
    extra = EXTRAS.get(package)
    if extra is None:
        return None
    if command in TRAINING and package in ("tqdm", "matplotlib"):
        extra = "train"
    return UserError(f"mesti {command or ''} needs the [{extra}] extra ({package} is not "
                     f"installed): pip install 'mesti-mer[{extra}]'", DATA)


def _loaded(*names: str) -> tuple[type, ...]:
    """The exception classes ``module:Class`` whose modules are imported: an exception can only
    be an instance of a loaded class, and importing the others would pull in their extras."""
    found = []
    for name in names:
        module, _, attribute = name.partition(":")
        if module in sys.modules:
            found.append(getattr(sys.modules[module], attribute))
    return tuple(found)


def user_error(error: BaseException) -> UserError | None:
    """The message for a known user-error exception, or None for anything else (a bug)."""
    usage = _loaded("mesti.params:ParamsError", "mesti.pipeline.sample.generator:SampleTargetError",
                    "mesti.pipeline.runner.cluster:ClusterError",
                    "mesti.train.protocols:ProtocolError")
    data = _loaded("mesti.datasets_manifest.manifest:ManifestError",
                   "mesti.datasets_manifest.sheets:SheetError",
                   "mesti.datasets_manifest.overrides:OverridesError",
                   "mesti.pipeline.stores.read:StoreError",
                   "mesti.pipeline.runner.run:StageFailed",
                   "mesti.train.cluster:FoldLost",
                   "mesti.pipeline.stores.write:WriteRefused")
    if isinstance(error, usage):
        return UserError(str(error), USAGE)
    if isinstance(error, data):
        return UserError(str(error), DATA)
    if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT):
        return UserError(_disk_full(error), DATA)
    if isinstance(error, OSError) and error.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return UserError(_not_writable(error), DATA)
    return None


def _free_space(path: Path) -> str:
    """The free space of the file system ``path`` is (or would be) on."""
    probe = path.absolute()
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    try:
        return f"{shutil.disk_usage(probe).free / 1e6:.1f} MB free"
    except OSError:
        return "free space unknown"


def _disk_full(error: OSError) -> str:
    """A full disk or quota: the file being written (or, where the error does not say, the
    command's outputs) and the free space of its own file system."""
    paths = [Path(error.filename)] if error.filename else command_outputs() or [Path.cwd()]
    what = "no space left on device" if error.errno == errno.ENOSPC else "disk quota exceeded"
    if len(paths) == 1:
        free = f"{_free_space(paths[0])} on that file system"
    else:
        free = "; ".join(f"{_free_space(p)} on the file system of {p}" for p in paths)
    return f"{', '.join(map(str, paths))}: {what} while writing ({free}); what was written " \
           "before is kept"


def _not_writable(error: OSError) -> str:
    """A read-only folder or file system, or a path this user may not write (or read):
    the path, which the error names (or the command's outputs where it does not)."""
    paths = [Path(error.filename)] if error.filename else command_outputs() or [Path.cwd()]
    if error.errno == errno.EROFS:
        why = "read-only file system; write the outputs elsewhere"
    else:
        why = "permission denied (a read-only folder, or a file this user may not open)"
    return f"{', '.join(map(str, paths))}: {why}"
