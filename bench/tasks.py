"""Functions the benchmark sends to Dask workers.

They live here, not in ``bench.run``, because LocalCluster starts its workers with the
spawn method: a worker unpickles a task by importing its module, which must therefore be
importable and light (only what the task itself needs).
"""

from __future__ import annotations

import resource

import cv2
import numpy as np


def decode_clip(paths: list[str]) -> int:
    """Read and decode every frame file of one clip; return how many decoded.

    This is the decode floor: the least any per-clip stage must do with image-file clips.
    Single-threaded OpenCV, as in the faces stage's workers; only a count comes back.
    """
    cv2.setNumThreads(1)
    decoded = 0
    for path in paths:
        image = cv2.imdecode(np.fromfile(path, np.uint8), cv2.IMREAD_COLOR)
        decoded += image is not None
    return decoded


def peak_rss_mb() -> float:
    """This process's resident-set high-water mark in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
