"""The same training bytes on another CPU: two fresh processes under different ISA caps and
thread settings train MEGANet, FDP and MOL and must write identical weights and metrics.

One machine stands in for two: process A runs with the CPU's own ISA levels and one OpenMP
thread; process B caps oneDNN and MKL one level lower (AVX2 on an AVX-512 CPU, else SSE4.1),
asks ATen for its generic kernels and two threads. Unpinned, such differences change the
weights (README, "Reproducibility"); `mesti train`'s deterministic mode must override them.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml
from sequences_fake import sequences_store
from test_training import tiny_store

ROOT = Path(__file__).resolve().parents[1]
PINNED = ("ATEN_CPU_CAPABILITY", "MKL_CBWR", "ONEDNN_MAX_CPU_ISA", "MKL_ENABLE_INSTRUCTIONS",
          "OMP_NUM_THREADS", "MKL_NUM_THREADS")
DRIVER = """
import sys
from mesti.cli import main
params, modalities, sequences, out = sys.argv[1:]
for model, store in (("meganet", modalities), ("fdp", sequences), ("mol", sequences)):
    main(["train", store, f"{out}/{model}", "--model", model, "--params", params,
          "--no-progress"], standalone_mode=False)
"""


def _has_avx512() -> bool:
    try:
        return "avx512f" in Path("/proc/cpuinfo").read_text()
    except OSError:
        return False


def _params(path: Path) -> Path:
    """The repository's small sample settings, cut to a few steps."""
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["train"].update(protocol="holdout", holdout_fraction=0.3, input_size=32, epochs=1,
                           batch_size=4, figure_clips=0, deterministic=True, threads=1)
    params["fdp"].update(steps=2, batch_size=4)
    params["mol"].update(steps=2, batch_size=4)
    path.write_text(yaml.safe_dump({k: params[k] for k in ("train", "fdp", "mol")}))
    return path


def _train(tmp: Path, name: str, env: dict[str, str], params: Path, stores: list[str]) -> Path:
    base = {k: v for k, v in os.environ.items() if k not in PINNED}
    out = tmp / name
    result = subprocess.run([sys.executable, "-c", DRIVER, str(params), *stores, str(out)],
                            env={**base, **env}, cwd=tmp, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return out


def _outputs(run: Path) -> dict[str, bytes]:
    """Every weight file, metrics.json and predictions.csv of the three models' runs."""
    return {str(p.relative_to(run)): p.read_bytes() for p in sorted(run.rglob("*"))
            if p.is_file() and (p.suffix == ".pt" or p.name in ("metrics.json",
                                                                 "predictions.csv"))}


def test_training_bytes_do_not_depend_on_isa_or_threads(tmp_path: Path) -> None:
    stores = [tiny_store(tmp_path / "m.zarr", "casme2", 3, 0),
              sequences_store(tmp_path / "s.zarr", "casme2", 3, 0, side=64)]
    params = _params(tmp_path / "params.yaml")
    lower = "AVX2" if _has_avx512() else "SSE41"
    pair = (f"this CPU's own ISA levels, 1 OpenMP thread vs oneDNN and MKL capped at {lower}, "
            f"ATen generic, 2 threads")
    print(f"compared: {pair}")
    a = _train(tmp_path, "a", {"OMP_NUM_THREADS": "1"}, params, stores)
    b = _train(tmp_path, "b", {"ONEDNN_MAX_CPU_ISA": lower,
                               "MKL_ENABLE_INSTRUCTIONS": "AVX2" if lower == "AVX2" else "SSE4_2",
                               "ATEN_CPU_CAPABILITY": "default", "OMP_NUM_THREADS": "2",
                               "MKL_NUM_THREADS": "2"}, params, stores)
    first, second = _outputs(a), _outputs(b)
    assert sum(name.endswith(".pt") for name in first) >= 3
    assert sorted(first) == sorted(second)
    differing = [name for name in first if first[name] != second[name]]
    assert not differing, f"{pair}: {differing} differ"
    for model in ("meganet", "fdp", "mol"):
        cpu = json.loads((a / model / "config.json").read_text())["determinism"]["cpu"]
        assert cpu["pinned"] and not cpu["onednn"] and cpu["threads"] == 1, cpu
        assert cpu["aten_capability"] == "AVX2" and cpu["MKL_CBWR"] == "COMPATIBLE"
        assert (a / model / "config.json").read_bytes() == (b / model / "config.json").read_bytes()


def test_pinning_in_process_is_recorded_restored_and_warns_when_late(monkeypatch) -> None:
    import pytest
    import torch
    from mesti.train.determinism import ENVIRONMENT, deterministic

    for name in ENVIRONMENT:
        monkeypatch.delenv(name, raising=False)
    before = (torch.backends.mkldnn.enabled, torch.get_num_threads())
    with pytest.warns(RuntimeWarning, match="set after torch was imported"):
        with deterministic(True, threads=1) as record:
            assert not torch.backends.mkldnn.enabled and torch.get_num_threads() == 1
    cpu = record["cpu"]
    assert cpu["pinned"] is False and cpu["threads"] == 1 and cpu["onednn"] is False
    assert cpu["MKL_CBWR"] == "COMPATIBLE" and cpu["problems"]
    assert (torch.backends.mkldnn.enabled, torch.get_num_threads()) == before
    with deterministic(False, threads=0) as record:
        assert torch.backends.mkldnn.enabled == before[0]
    assert record["cpu"]["pinned"] is False


def test_thread_and_split_knobs_are_checked() -> None:
    import pytest
    from mesti.train.run import TrainConfig

    with pytest.raises(ValueError, match=r"threads >= 0 \(>= 1 when deterministic\)"):
        TrainConfig(threads=0)
    assert TrainConfig(threads=0, deterministic=False).threads == 0
    with pytest.raises(ValueError, match="holdout_split"):
        TrainConfig(holdout_split="random")
