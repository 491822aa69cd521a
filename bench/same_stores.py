"""Check that moving code between modules changed no byte of the stores it writes.

    python bench/same_stores.py BASE_REV [--work DIR]

Builds the same small synthetic sample's faces, modalities and sequences stores twice through
the command line (``mesti sample``, ``manifest``, ``preprocess``, ``sequences``, one process,
no Dask): once with the code of BASE_REV (``git archive`` into a scratch folder, imported
ahead of the installed package) and once with the working tree's. Then compares the two
stores of each kind file by file: every chunk and shard must be byte-identical, and every
``zarr.json`` must hold the same document except for what moving code has to change: the
stage's code hash (``versions.code_sha256``) and the content keys computed from it
(``content_key``, ``faces_key``). Prints each difference and exits 1 if there is any other.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from io import BytesIO
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Where the installed package maps its subpackages from (pyproject.toml, [tool.setuptools]).
SUBPACKAGES = {"pipeline": "pipeline", "train": "train", "datasets_manifest": "datasets_manifest"}
# What moving code may change: the code hash and the keys derived from it.
CODE_DERIVED = frozenset({"code_sha256", "content_key", "faces_key"})
SAMPLE = ("sample:\n  seed: 5\n  subjects: 2\n  min_clips: 2\n  max_clips: 2\n"
          "  min_frames: 16\n  max_frames: 20\n")
STORES = ("faces.zarr", "modalities.zarr", "sequences.zarr")


def base_package(rev: str, into: Path) -> Path:
    """A folder holding ``mesti/`` as BASE_REV installs it, for PYTHONPATH."""
    archive = subprocess.run(["git", "archive", rev], cwd=ROOT, capture_output=True,
                             check=True).stdout
    source = into / "source"
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(source, filter="data")
    package = into / "site" / "mesti"
    shutil.copytree(source / "mesti", package)
    for name, folder in SUBPACKAGES.items():
        shutil.copytree(source / folder, package / name)
    site = into / "site"
    # The copy must win over the installed package, or both builds would run the same code.
    where = subprocess.run([sys.executable, "-c", "import mesti.pipeline; "
                            "print(list(mesti.pipeline.__path__)[0])"], cwd=into,
                           env={**os.environ, "PYTHONPATH": str(site)}, capture_output=True,
                           text=True, check=True).stdout.strip()
    if not Path(where).is_relative_to(site):
        raise SystemExit(f"{rev}'s code is not what runs: mesti.pipeline comes from {where}")
    return site


def mesti(args: list[str], pythonpath: Path | None, cwd: Path) -> None:
    env = dict(os.environ)
    if pythonpath is not None:
        env["PYTHONPATH"] = str(pythonpath)
    code = "import sys; from mesti.cli import main; sys.argv[0] = 'mesti'; main()"
    subprocess.run([sys.executable, "-c", code, *args], cwd=cwd, env=env, check=True,
                   stdout=subprocess.DEVNULL)


def build(out: Path, manifest: Path, pythonpath: Path | None) -> None:
    out.mkdir(parents=True)
    serial = ["--workers", "0", "--no-progress"]
    mesti(["preprocess", str(manifest), str(out / "faces.zarr"), str(out / "modalities.zarr"),
           *serial], pythonpath, out)
    mesti(["sequences", str(out / "faces.zarr"), str(out / "sequences.zarr"), *serial],
          pythonpath, out)


def json_differences(one: object, two: object, where: str = "") -> list[tuple[str, str]]:
    """(path, the last key) of every leaf where two JSON documents differ."""
    if isinstance(one, dict) and isinstance(two, dict):
        found = []
        for key in sorted(set(one) | set(two)):
            path = f"{where}/{key}"
            if key not in one or key not in two:
                found.append((path, key))
            else:
                found += json_differences(one[key], two[key], path)
        return found
    if isinstance(one, list) and isinstance(two, list) and len(one) == len(two):
        return [d for i, (a, b) in enumerate(zip(one, two, strict=True))
                for d in json_differences(a, b, f"{where}[{i}]")]
    return [] if one == two else [(where, where.rsplit("/", 1)[-1])]


def store_differences(one: Path, two: Path) -> tuple[list[str], list[str]]:
    """(differences moving code may make, any other difference) between two store folders."""
    files_one = {p.relative_to(one) for p in one.rglob("*") if p.is_file()}
    files_two = {p.relative_to(two) for p in two.rglob("*") if p.is_file()}
    allowed, other = [], [f"only in one store: {p}" for p in sorted(files_one ^ files_two)]
    for name in sorted(files_one & files_two):
        a, b = (one / name).read_bytes(), (two / name).read_bytes()
        if a == b:
            continue
        if name.name != "zarr.json":
            other.append(f"{name}: bytes differ")
            continue
        for path, key in json_differences(json.loads(a), json.loads(b)):
            (allowed if key in CODE_DERIVED else other).append(f"{name}: {path}")
    return allowed, other


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("base_rev")
    parser.add_argument("--work", type=Path, help="keep the stores here (default: a temp dir)")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="same_stores_"))
    work.mkdir(parents=True, exist_ok=True)
    (work / "params.yaml").write_text(SAMPLE)
    mesti(["sample", str(work / "raw"), "--params", str(work / "params.yaml")], None, work)
    mesti(["manifest", "casme2", str(work / "raw"), str(work / "manifest")], None, work)
    manifest = work / "manifest" / "manifest.csv"
    # Both built in one folder (a store records where its input store was), then moved aside.
    base_code = base_package(args.base_rev, work / "base_code")
    for name, pythonpath in (("base", base_code), ("head", None)):
        build(work / "build", manifest, pythonpath)
        (work / "build").rename(work / name)
    failed = False
    for store in STORES:
        allowed, other = store_differences(work / "base" / store, work / "head" / store)
        chunks = sum(1 for p in (work / "head" / store).rglob("*")
                     if p.is_file() and p.name != "zarr.json")
        keys = sorted({line.rsplit("/", 1)[-1] for line in allowed})
        print(f"{store}: {chunks} chunk files identical; {len(allowed)} metadata values differ, "
              f"all code-derived ({', '.join(keys) or 'none'}); other differences: {len(other)}")
        for line in other:
            print(f"  {line}")
        failed |= bool(other)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
