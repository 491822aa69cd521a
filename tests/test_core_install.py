"""The reader alone: a fresh virtual environment with the core dependencies only.

The tests marked ``slow`` create a virtual environment and pip-installs the project without
extras, from the configured index and pip's own cache (about half a minute on a 2-core x86
CPU with a warm cache; the first run downloads about 60 MB). In it, a lab that only
receives a cache opens, verifies, indexes and re-exports the sample's exported zip, from a
file and over HTTP, and every command that needs an extra says which one, in one line. The
oracle is the main environment (every extra installed) reading the same store.
"""

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from loopback import serving

import mesti

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "cv2", "mediapipe", "numba", "dask", "distributed", "matplotlib", "dvc",
         "skimage", "openpyxl", "jax")

# What pyproject.toml builds the wheel from (its package-dir mapping and readme).
PACKAGE_SOURCES = ("pyproject.toml", "README.md", "mesti", "pipeline", "train",
                   "datasets_manifest")


def clean_env() -> dict[str, str]:
    """This process's environment without the main venv's traces (PATH entry, VIRTUAL_ENV,
    PYTHONPATH), so the core venv sees only what it installed."""
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    bin_dir = str(Path(sys.executable).parent)
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep)
                                  if p != bin_dir)
    return env


@pytest.fixture(scope="module")
def core_venv(tmp_path_factory) -> Path:
    """A venv holding ``pip install`` of the project (no extras); its bin folder.

    The package's sources are copied out first, so the build leaves no ``build/`` folder in
    the checkout, and no stale one there can slip into the wheel."""
    tmp = tmp_path_factory.mktemp("core")
    source = tmp / "source"
    source.mkdir()
    for name in PACKAGE_SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, source / name,
                            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(ROOT / name, source / name)
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, env=clean_env())
    done = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install",
                           "--disable-pip-version-check", "--quiet", str(source)],
                          capture_output=True, text=True, env=clean_env(), timeout=600)
    assert done.returncode == 0, "pip install of the core failed:\n" + done.stderr[-3000:]
    return venv / "bin"


def run(bin_dir: Path, args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(bin_dir / args[0]), *args[1:]], cwd=cwd, capture_output=True,
                          text=True, env=clean_env(), timeout=300)


READ = """
import importlib.util, json, sys
import numpy as np
import mesti
heavy = {heavy!r}
store = mesti.open_store(sys.argv[1])
index = store.index
np.save(sys.argv[2], store.images("mesti"))
print(json.dumps({{
    "installed": [name for name in heavy if importlib.util.find_spec(name) is not None],
    "imported": [name for name in heavy if name in sys.modules],
    "clips": list(index["clip_id"]),
    "labels": list(index["label3"]),
    "names": list(store.names),
    "numpy": np.__version__,
}}))
"""


@pytest.mark.slow
def test_the_core_reads_verifies_and_indexes_a_cache(core_venv: Path, small_stores: Path,
                                                      tmp_path: Path) -> None:
    (tmp_path / "sample.zip").write_bytes((small_stores / "export" / "modalities.zip").read_bytes())
    truth = mesti.open_store(tmp_path / "sample.zip")
    (tmp_path / "read.py").write_text(READ.format(heavy=HEAVY))

    verified = run(core_venv, ["mesti", "cache", "verify", "sample.zip"], tmp_path)
    assert verified.returncode == 0, verified.stderr[-2000:]
    assert "sample.zip: ok" in verified.stdout

    info = run(core_venv, ["mesti", "cache", "info", "sample.zip", "--json"], tmp_path)
    assert info.returncode == 0, info.stderr[-2000:]
    assert json.loads(info.stdout)["kind"] == truth.kind == "modalities"

    with serving(tmp_path) as url:
        for location, name in (("sample.zip", "file"), (f"{url}/sample.zip", "url")):
            done = run(core_venv, ["python", "read.py", location, f"{name}.npy"], tmp_path)
            assert done.returncode == 0, done.stderr[-2000:]
            seen = json.loads(done.stdout)
            assert seen["installed"] == [], f"the core installed {seen['installed']}"
            assert seen["imported"] == []
            assert seen["clips"] == list(truth.index["clip_id"]) and len(seen["clips"]) == 4
            assert seen["labels"] == list(truth.index["label3"])
            assert seen["names"] == list(truth.names)
            assert np.array_equal(np.load(tmp_path / f"{name}.npy"), truth.images("mesti"))


@pytest.mark.slow
def test_the_core_exports_the_same_store_bytes(core_venv: Path, small_stores: Path,
                                               tmp_path: Path) -> None:
    """An export made with the core equals the main environment's, member for member, except
    for the exporting environment's versions that MANIFEST.json records (and their checksum)."""
    done = run(core_venv, ["mesti", "cache", "export", str(small_stores / "modalities.zarr"),
                           str(tmp_path / "core.zip")], tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    with zipfile.ZipFile(tmp_path / "core.zip") as ours, \
            zipfile.ZipFile(small_stores / "export" / "modalities.zip") as theirs:
        assert ours.namelist() == theirs.namelist()
        for name in ours.namelist():
            if name in ("MANIFEST.json", "SHA256SUMS"):
                continue
            assert ours.read(name) == theirs.read(name), name
        manifests = [json.loads(z.read("MANIFEST.json")) for z in (ours, theirs)]
    for manifest in manifests:
        del manifest["exported_with"]
    assert manifests[0] == manifests[1]
    verified = run(core_venv, ["mesti", "cache", "verify", "core.zip"], tmp_path)
    assert verified.returncode == 0, verified.stderr[-2000:]


@pytest.mark.slow
@pytest.mark.parametrize("args, extra, package", [
    (["sample", "out"], "pipeline", "cv2"),
    (["manifest", "casme2", ".", "out"], "pipeline", "cv2"),
    (["show", "sample.zip", "clip", "clip.png"], "pipeline", "matplotlib"),
    (["train", "sample.zip", "run"], "train", "torch"),
])
def test_a_command_needing_an_extra_names_it(core_venv: Path, small_stores: Path,
                                              tmp_path: Path, args: list[str], extra: str,
                                              package: str) -> None:
    (tmp_path / "sample.zip").write_bytes((small_stores / "export" / "modalities.zip").read_bytes())
    done = run(core_venv, ["mesti", *args], tmp_path)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        f"Error: mesti {args[0]} needs the [{extra}] extra ({package} is not installed): "
        f"pip install 'mesti-mer[{extra}]'"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sample.zip"]


@pytest.mark.slow
def test_the_dataset_names_its_extra(core_venv: Path, tmp_path: Path) -> None:
    done = run(core_venv, ["python", "-c", "import mesti; mesti.MestiDataset"], tmp_path)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1] == (
        "ModuleNotFoundError: mesti.MestiDataset needs torch, which is not installed: "
        "pip install 'mesti-mer[dataset]'")


BLOCKED = """
import sys
for name in {blocked!r}:
    sys.modules[name] = None
sys.argv = ["mesti", *{args!r}]
from mesti.cli import main
main()
"""


@pytest.mark.parametrize("args, blocked, message", [
    (["sample", "out"], ["cv2"],
     "mesti sample needs the [pipeline] extra (cv2 is not installed): "
     "pip install 'mesti-mer[pipeline]'"),
    (["train", "sample.zip", "run"], ["matplotlib"],
     "mesti train needs the [train] extra (matplotlib is not installed): "
     "pip install 'mesti-mer[train]'"),
])
def test_a_missing_extra_is_one_line_here_too(tmp_path: Path, args: list[str],
                                              blocked: list[str], message: str) -> None:
    """The same messages in this environment, with the extra's packages blocked (fast)."""
    (tmp_path / "sample.zip").write_bytes(b"")
    done = subprocess.run([sys.executable, "-c", BLOCKED.format(blocked=blocked, args=args)],
                          cwd=tmp_path, capture_output=True, text=True)
    assert (done.returncode, done.stderr.strip().splitlines()) == (1, [f"Error: {message}"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sample.zip"]


def test_only_a_known_package_is_an_extra() -> None:
    """A module of the project itself, or one no extra brings, that fails to import is a bug
    and keeps its traceback (no message is made for it)."""
    from mesti.cli import missing_extra

    assert missing_extra(ModuleNotFoundError(name="mesti.pipeline.nothing"), "faces") is None
    assert missing_extra(ModuleNotFoundError(name="somepackage"), "faces") is None
    assert missing_extra(ImportError(name="cv2"), "faces") is None
    known = missing_extra(ModuleNotFoundError(name="dask_jobqueue.slurm"), "faces")
    assert known is not None and "[cluster]" in known.message and known.exit_code == 1


def test_the_command_line_names_every_recipe() -> None:
    """`mesti manifest`'s choices are spelled out in mesti/cli.py (so the command line imports
    without OpenCV); they must be the recipes' own names."""
    from mesti.datasets_manifest import RECIPES

    from mesti.cli import DATASETS

    assert list(DATASETS) == sorted(RECIPES)
