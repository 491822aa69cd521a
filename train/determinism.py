"""Deterministic kernels for a run, the same bytes on any x86-64 CPU, and a record of them.

CPU. A run repeats itself bit for bit on one machine (seeded weights and batches), but on
another CPU the arithmetic differs unless three libraries and the thread count are pinned
(measured in fresh processes on MEGANet, FDP and MOL, a few Adam steps each; README,
"Reproducibility"):

- ATen's vectorised kernels dispatch by ISA (AVX-512 here changed MEGANet's weights against
  AVX2): ``ATEN_CPU_CAPABILITY=avx2``, the level every x86-64 CPU since 2013-2015 has. Read
  once, at torch's first operation.
- oneDNN convolutions choose kernels and blockings by ISA and cache size (capping it at
  AVX2 or SSE4.1 changed all three models): off, ``torch.backends.mkldnn.enabled = False``;
  convolutions then run as ATen's im2col + BLAS.
- MKL, that BLAS, dispatches by CPU (its ``MKL_CBWR=AVX2`` branch changed all three):
  ``MKL_CBWR=COMPATIBLE``, MKL's conditional numerical reproducibility branch of plain SSE2
  without the approximate reciprocals whose results differ between vendors (the AVX2 branch
  falls back to automatic dispatch on non-Intel CPUs). Read once, when MKL starts.
- The intra-op thread count splits reductions (1 vs 2 threads changed all three): fixed per
  run (``train.threads``), set explicitly.

The two variables are read once per process, so :func:`pin_process` sets them where the
process starts (the ``mesti`` command, before torch is imported); :func:`deterministic`
checks them and records in the run's config.json whether the pinning holds.

CUDA. cuDNN's autotuner and atomics-based kernels make runs differ; PyTorch can forbid them:
``cudnn.deterministic``, ``cudnn.benchmark = False`` and ``use_deterministic_algorithms``
(which needs ``CUBLAS_WORKSPACE_CONFIG`` set before cuBLAS starts). Ops with no
deterministic CUDA kernel warn rather than stop the run (``warn_only``); the record says so.
CUDA and CPU results are not expected to agree.
"""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

WORKSPACE = ":4096:8"
# Read once per process: ATen at its first operation, MKL when it starts.
ENVIRONMENT = {"ATEN_CPU_CAPABILITY": "avx2", "MKL_CBWR": "COMPATIBLE"}
CAPABILITY = "AVX2"  # what torch reports once ATEN_CPU_CAPABILITY=avx2 took effect


def pin_process() -> dict[str, str]:
    """Set the variables that torch's CPU libraries read once per process; call before
    torch is imported (the ``mesti`` command does). Returns what it set."""
    os.environ.update(ENVIRONMENT)
    return dict(ENVIRONMENT)


def cpu_pinning(threads: int) -> dict:
    """Pin this process's CPU kernels for a run: oneDNN off, ``threads`` intra-op threads,
    and a check of the once-read variables; the record for config.json.

    When torch started before :func:`pin_process` (library use after ``import torch``),
    the variables are set now, which holds only if torch has not computed yet; the record
    says ``pinned: false`` and a warning names what to do.
    """
    late = [name for name, value in ENVIRONMENT.items() if os.environ.get(name) != value]
    started = "torch" in sys.modules
    if late:
        os.environ.update(ENVIRONMENT)
    import torch

    torch.backends.mkldnn.enabled = False
    torch.set_num_threads(threads)
    capability = torch.backends.cpu.get_cpu_capability()
    problems = []
    if capability != CAPABILITY:
        problems.append(f"ATen runs {capability} kernels, not {CAPABILITY}")
    if late and started:
        problems.append(f"{', '.join(late)} set after torch was imported (MKL may have "
                        f"started without them)")
    if problems:
        warnings.warn("deterministic CPU kernels not pinned: " + "; ".join(problems)
                      + ". Run `mesti train`, or call mesti.train.determinism.pin_process() "
                        "before importing torch, for outputs that other CPUs reproduce",
                      RuntimeWarning, stacklevel=3)
    return {"pinned": not problems, "aten_capability": capability,
            **{name: os.environ.get(name, "") for name in ENVIRONMENT},
            "onednn": torch.backends.mkldnn.enabled, "threads": torch.get_num_threads(),
            **({"problems": problems} if problems else {})}


@contextmanager
def deterministic(enabled: bool, threads: int = 1) -> Iterator[dict]:
    """Within the block, PyTorch's deterministic settings on CUDA and the CPU pinning of
    :func:`cpu_pinning` (restored afterwards, but for the once-read variables); yields the
    settings in force, for config.json. ``threads`` 0 keeps torch's own count."""
    import torch

    saved = (torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark,
             torch.are_deterministic_algorithms_enabled(),
             torch.is_deterministic_algorithms_warn_only_enabled(),
             torch.backends.mkldnn.enabled, torch.get_num_threads())
    cpu = {"pinned": False, "threads": torch.get_num_threads()}
    if enabled:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", WORKSPACE)
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
        torch.use_deterministic_algorithms(True, warn_only=True)
        cpu = cpu_pinning(threads)
    elif threads:
        torch.set_num_threads(threads)
        cpu["threads"] = threads
    try:
        yield {"requested": enabled,
               "cudnn_deterministic": torch.backends.cudnn.deterministic,
               "cudnn_benchmark": torch.backends.cudnn.benchmark,
               "deterministic_algorithms": torch.are_deterministic_algorithms_enabled(),
               "warn_only": torch.is_deterministic_algorithms_warn_only_enabled(),
               "CUBLAS_WORKSPACE_CONFIG": os.environ.get("CUBLAS_WORKSPACE_CONFIG", ""),
               "cpu": cpu,
               "torch": torch.__version__}
    finally:
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = saved[:2]
        torch.use_deterministic_algorithms(saved[2], warn_only=saved[3])
        torch.backends.mkldnn.enabled = saved[4]
        torch.set_num_threads(saved[5])
