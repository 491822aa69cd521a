"""mesti: reference preprocessing for facial micro-expression recognition.

The one import name of the project. The public API is what a lab receiving a cache needs:

- ``open_store(location)``: a faces, modality or sequences store from a directory, a zip or a URL;
- ``MestiDataset(store, image="mesti", labels="label3")``: a PyTorch Dataset over a store;
- ``load_manifest(path)``: a manifest CSV as the list of clip records the stages read.

The stages live in ``mesti.pipeline``, the dataset recipes in ``mesti.datasets_manifest`` and the
trainer in ``mesti.train``. Names are imported on first use, so ``import mesti`` stays cheap and
pulls in neither torch nor MediaPipe.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_PUBLIC = {
    "open_store": ("mesti.pipeline.stores.read", "open_store"),
    "MestiDataset": ("mesti.train.dataset", "MestiDataset"),
    "load_manifest": ("mesti.datasets_manifest.manifest", "read_manifest"),
}

# The extra that installs what a public name needs beyond the core (the reader's numpy and zarr).
_EXTRAS = {"MestiDataset": "dataset", "load_manifest": "pipeline"}

__all__ = ["MestiDataset", "__version__", "load_manifest", "open_store"]


def __getattr__(name: str) -> Any:
    try:
        module, attribute = _PUBLIC[name]
    except KeyError:
        raise AttributeError(f"module 'mesti' has no attribute {name!r}") from None
    try:
        value = getattr(importlib.import_module(module), attribute)
    except ModuleNotFoundError as error:
        extra = _EXTRAS.get(name)
        package = (error.name or "mesti").partition(".")[0]
        if extra is None or package == "mesti":
            raise
        raise ModuleNotFoundError(f"mesti.{name} needs {package}, which is not installed: "
                                  f"pip install 'mesti-mer[{extra}]'", name=error.name) from error
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_PUBLIC))
