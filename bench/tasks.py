"""Functions the benchmark sends to Dask workers.

They live here, not in ``bench.run``, because LocalCluster starts its workers with the
spawn method: a worker unpickles a task by importing its module, which must therefore be
importable and light (only what the task itself needs).
"""

from __future__ import annotations

import resource

import cv2
import numpy as np


def decode_clip(paths: list[str], grey: bool = False) -> int:
    """Read and decode every frame file of one clip; return how many decoded.

    This is the decode floor: the least any per-clip stage must do with image-file clips.
    Single-threaded OpenCV, as in the pipeline's workers; only a count comes back. With
    ``grey``, files are decoded as grey (the floor of grey data: the pipeline decodes a
    one-channel file as grey).
    """
    cv2.setNumThreads(1)
    decoded = 0
    flag = cv2.IMREAD_GRAYSCALE if grey else cv2.IMREAD_COLOR
    for path in paths:
        image = cv2.imdecode(np.fromfile(path, np.uint8), flag)
        decoded += image is not None
    return decoded


def warm_worker() -> None:
    """What a worker loads before its first clip: the stages' modules, MediaPipe's models,
    the Numba kernels (from their on-disk cache)."""
    from mesti.pipeline.faces.align import FacesConfig
    from mesti.pipeline.pooling.kernels import weighted_sum
    from mesti.pipeline.runner import stages

    stages._models(FacesConfig().min_confidence)
    weighted_sum(np.zeros((3, 8, 8, 3), np.uint8), np.ones(3, np.float32))


def peak_rss_mb() -> float:
    """This process's resident-set high-water mark in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
