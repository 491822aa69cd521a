"""Deterministic kernels for a run, and a record of what was asked for.

On CPU the trainer is bit-identical across runs by construction (seeded weights, seeded
batches, one thread order per op). On CUDA, cuDNN's autotuner and atomics-based kernels make
runs differ; PyTorch can forbid them: ``cudnn.deterministic``, ``cudnn.benchmark = False``
and ``use_deterministic_algorithms`` (which needs ``CUBLAS_WORKSPACE_CONFIG`` set before
cuBLAS starts). Ops with no deterministic CUDA kernel warn rather than stop the run
(``warn_only``); the record says so.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import torch

WORKSPACE = ":4096:8"


@contextmanager
def deterministic(enabled: bool) -> Iterator[dict]:
    """Within the block, PyTorch's deterministic settings (restored afterwards); yields the
    settings in force, for config.json."""
    saved = (torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark,
             torch.are_deterministic_algorithms_enabled(),
             torch.is_deterministic_algorithms_warn_only_enabled())
    if enabled:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", WORKSPACE)
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
        torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        yield {"requested": enabled,
               "cudnn_deterministic": torch.backends.cudnn.deterministic,
               "cudnn_benchmark": torch.backends.cudnn.benchmark,
               "deterministic_algorithms": torch.are_deterministic_algorithms_enabled(),
               "warn_only": torch.is_deterministic_algorithms_warn_only_enabled(),
               "CUBLAS_WORKSPACE_CONFIG": os.environ.get("CUBLAS_WORKSPACE_CONFIG", ""),
               "torch": torch.__version__}
    finally:
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = saved[:2]
        torch.use_deterministic_algorithms(saved[2], warn_only=saved[3])
