"""docs/design.md section 2.2: the dependency rules, checked by importing with packages blocked."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def import_with_blocked(code: str, blocked: list[str]) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter where importing any of ``blocked`` fails."""
    prelude = (
        "import sys\n"
        f"for name in {blocked!r}:\n"
        "    sys.modules[name] = None\n"
    )
    return subprocess.run([sys.executable, "-c", prelude + code], cwd=ROOT,
                          capture_output=True, text=True)


@pytest.mark.parametrize("module, blocked", [
    ("mesti.pipeline.stores.read",
     ["mediapipe", "numba", "dask", "distributed", "cv2", "torch", "pandas"]),
    ("mesti.datasets_manifest.manifest", ["mediapipe", "numba", "dask", "distributed", "torch"]),
    ("mesti.pipeline.runner.run", ["torch"]),
    ("mesti.pipeline.pooling.weights",
     ["mediapipe", "numba", "dask", "distributed", "torch", "cv2"]),
    ("mesti.pipeline.stores.tools", ["mediapipe", "numba", "dask", "distributed", "torch", "cv2"]),
])
def test_module_imports_without(module: str, blocked: list[str]) -> None:
    result = import_with_blocked(f"import {module}", blocked)
    assert result.returncode == 0, result.stderr[-2000:]


def test_only_the_orchestration_imports_dask() -> None:
    modules = ("pooling.apex", "faces.align", "faces.decode", "pooling.kernels", "stores.read",
               "sample.generator", "figures", "runner.stages", "stores.write", "pooling.weights",
               "stores.tools", "runner.sequences")
    code = "import " + ", ".join(f"mesti.pipeline.{name}" for name in modules)
    result = import_with_blocked(code, ["dask", "distributed"])
    assert result.returncode == 0, result.stderr[-2000:]


def test_blocking_really_blocks() -> None:
    result = import_with_blocked(
        "import mesti.pipeline.runner.run; mesti.pipeline.runner.run.dask_client", ["numba"])
    assert result.returncode != 0 and "numba" in result.stderr

