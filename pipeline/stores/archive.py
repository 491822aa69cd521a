"""What verifying, describing and exporting a store share: the export archive's member
names and how a member is written, opening a store so that a damaged archive is one message,
and which arrays a clip has. ``verify``, ``info`` and ``export`` import this module; it
imports none of them.
"""

from __future__ import annotations

import zipfile
import zlib
from pathlib import Path

from .read import Store, StoreError, open_store
from .write import SPEC, spec_arrays

MANIFEST = "MANIFEST.json"
CHECKSUMS = "SHA256SUMS"
EXPORT_VERSION = 1
ZIP_TIME = (1980, 1, 1, 0, 0, 0)  # fixed, so the same store gives the same zip bytes
# What reading a damaged file raises: a zip member failing its CRC or cut short, a
# deflated member that does not inflate, a header whose flipped flag bits or method zipfile
# does not support (NotImplementedError), a file system error, a refused size.
READ_ERRORS = (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, OSError,
               ValueError)



def open_checked(location: str | Path, *, require_complete: bool = True,
          consolidated: bool = True) -> Store:
    """``open_store``, where a damaged archive (a zip whose directory, headers or root
    metadata a flipped byte broke) is a StoreError naming it, not a traceback."""
    try:
        return open_store(location, require_complete=require_complete,
                          consolidated=consolidated)
    except StoreError:
        raise
    except READ_ERRORS as error:
        raise StoreError(f"{location}: a damaged archive, cannot read its root: "
                         f"{error_text(error)}") from error


def error_text(error: Exception) -> str:
    return f"{type(error).__name__}: {error}"


def clip_arrays(store: Store, clip_id: str) -> list[str]:
    """The arrays of one clip, from the store spec (``store.SPEC``): every array its store's
    parameters promise, and any optional one the clip holds. Verify checks, and export
    writes, exactly these, so neither can leave one out."""
    promised = spec_arrays(store.kind, store.attrs.get("params"))
    optional = [name for name in SPEC[store.kind] if name not in promised
                and store.exists(f"clips/{clip_id}/{name}/zarr.json")]
    return [*promised, *optional]


def add_member(archive: zipfile.ZipFile, name: str, data: bytes) -> None:
    """Metadata deflated; chunk data stored, so a reader can fetch one image by range."""
    text = name.endswith(".json") or name == CHECKSUMS
    member = zipfile.ZipInfo(name, date_time=ZIP_TIME)
    member.compress_type = zipfile.ZIP_DEFLATED if text else zipfile.ZIP_STORED
    member.external_attr = 0o644 << 16
    archive.writestr(member, data)
