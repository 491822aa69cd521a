"""Tiny sequences stores shaped as cache/README.md specifies, written by the project's writer."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from mesti.pipeline.runner.sequences import DIMENSIONS
from mesti.pipeline.stores import keys
from mesti.pipeline.stores import write as store

LABELS = ("negative", "positive", "surprise")


def sequences_store(path: Path, dataset: str, subjects: int, seed: int, *, side: int = 36,
                    length: int = 8, flow: bool = True, phases: tuple[int, ...] = (1, 2, 3)
                    ) -> str:
    """Clips s{subject}_c{class}; clip c has ``phases[c]`` phases; a bright square drifts
    right at a class-dependent speed, so class, flow and landmarks are learnable."""
    rng = np.random.default_rng(seed)
    store.open_for_writing(path, "sequences", {"dataset": dataset, "size": side})
    ids = []
    for s in range(subjects):
        for c, label in enumerate(LABELS):
            clip_id = f"s{s}_c{c}"
            p = phases[c % len(phases)]
            frames = rng.integers(0, 40, (p, length, side, side), dtype=np.uint8)
            for t in range(length):
                x0 = 4 + (c * t) % (side - 12)
                frames[:, t, 10:18, x0:x0 + 8] = 220
            arrays = {
                "frames": frames,
                "positions": np.tile(np.arange(length, dtype=np.float32) * p, (p, 1))
                + np.arange(p, dtype=np.float32)[:, None],
                "landmarks": (rng.random((p, length, 68, 2)) * side).astype(np.float32),
                "pupil_distance": np.full((p, length), side / 3, np.float32),
            }
            if flow:
                f = np.zeros((p, length - 1, side, side, 2), np.float16)
                f[..., 0] = c
                arrays["flow"] = f
            attrs = {"dataset": dataset, "subject": f"s{s}", "clip_id": clip_id,
                     "emotion": label, "label3": label, "label5": None, "n_frames": p * length,
                     "size": side, "sampling": "uniform", "length": length, "phases": p,
                     "faces_key": f"faces-{clip_id}",
                     "provenance": {"params": {"size": side, "flow": flow}, "versions": {}}}
            # the key the stage's recipe gives, so readers that check it accept the clip
            store.write_clip(path, clip_id, arrays, attrs, keys.recompute_key("sequences", attrs),
                             dimensions={k: DIMENSIONS[k] for k in arrays})
            ids.append(clip_id)
    store.finalise(path, ids, {})
    return str(path)
