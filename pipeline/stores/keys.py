"""Content keys: the sha256 that names what a clip was computed from, and its recipe.

A clip's key covers its manifest fields, the stage's knobs, the software (package versions
and the stage's code hash) and its input (the decoded bytes, or the faces clip it was
computed from). The writer stores it; the reader and ``verify`` recompute it from a clip's
own attributes, so an edited label is found. Imports no other module of the store room.
"""

from __future__ import annotations

import hashlib
import json

# The manifest fields every clip of either kind carries (the manifest's ``root``, a path on the
# machine that built the store, is left out), and the index's columns: those plus n_frames.
MANIFEST_FIELDS = ("dataset", "subject", "clip_id", "source", "kind", "frames", "frame_numbers",
                   "onset", "apex", "offset", "emotion", "label3", "label5", "action_units",
                   "fps")


def content_key(payload: dict) -> str:
    """sha256 of the canonical JSON of ``payload`` (sorted keys, no spaces)."""
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


# A faces clip carries MANIFEST_FIELDS; a modality clip
# copies every one of them from its faces clip, and the window length.
MODALITY_FIELDS = (*MANIFEST_FIELDS, "n_frames")


SEQUENCE_FIELDS = (*MANIFEST_FIELDS, "n_frames")


def sequences_key(faces_key: str, clip: dict, params: dict, versions: dict) -> str:
    """A sequences clip's key: as a modality clip's, over the fields it copies."""
    return content_key({"stage": "sequences", "faces_key": faces_key, "clip": clip,
                        "params": params, "versions": versions})


def faces_key(clip: dict, params: dict, versions: dict, model_sha256: str,
              input_sha256: str) -> str:
    """A faces clip's key: its manifest fields, the stage's knobs, the software, its input."""
    return content_key({"stage": "faces", "clip": clip, "params": params, "versions": versions,
                        "model_sha256": model_sha256, "input": input_sha256})


def modalities_key(faces_key: str, clip: dict, params: dict, versions: dict) -> str:
    """A modality clip's key: the faces clip it was computed from, the fields it copies
    from it (so a label edited in the store no longer matches), the knobs, the software."""
    return content_key({"stage": "modalities", "faces_key": faces_key, "clip": clip,
                        "params": params, "versions": versions})


def recompute_key(kind: str, attrs: dict) -> str:
    """A clip's content key from its attributes, by the recipe the writing stage used.

    Raises KeyError naming what the attributes lack.
    """
    provenance = attrs.get("provenance") or {}
    need = ("params", "versions") + (("model_sha256", "input_sha256") if kind == "faces" else ())
    fields = {"faces": MANIFEST_FIELDS, "modalities": ("faces_key", *MODALITY_FIELDS),
              "sequences": ("faces_key",)}[kind]
    absent = [f"provenance.{k}" for k in need if k not in provenance]
    absent += [k for k in fields if k not in attrs]
    if absent:
        raise KeyError(f"attributes lack {', '.join(absent)}")
    if kind == "sequences":
        return sequences_key(attrs["faces_key"],
                             {k: attrs[k] for k in SEQUENCE_FIELDS if k in attrs},
                             provenance["params"], provenance["versions"])
    if kind == "modalities":
        return modalities_key(attrs["faces_key"],
                                     {k: attrs[k] for k in MODALITY_FIELDS},
                                     provenance["params"], provenance["versions"])
    return faces_key({k: attrs[k] for k in fields}, provenance["params"],
                            provenance["versions"], provenance["model_sha256"],
                            provenance["input_sha256"])
