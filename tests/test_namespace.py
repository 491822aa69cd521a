"""One import name: only ``mesti`` enters a user's import space (docs/design.md section 9)."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CODE = """
import importlib.util, json, sys
import mesti
import mesti.train.run
names = ("pipeline", "datasets_manifest", "bench")
found = {name: importlib.util.find_spec(name) for name in names}
print(json.dumps({
    "user_train": importlib.util.find_spec("train").origin,
    "ours_train": mesti.train.run.__file__,
    "others": {k: v.origin if v else None for k, v in found.items()},
    "public": [callable(getattr(mesti, n)) for n in ("open_store", "load_manifest")],
    "version": mesti.__version__,
}))
"""


def test_a_users_train_py_does_not_shadow_ours(tmp_path: Path) -> None:
    (tmp_path / "train.py").write_text("MINE = True\n")
    result = subprocess.run([sys.executable, "-c", CODE], cwd=tmp_path, capture_output=True,
                            text=True, env={"PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr[-2000:]
    seen = json.loads(result.stdout)
    assert seen["user_train"] == str(tmp_path / "train.py")
    assert Path(seen["ours_train"]).resolve() == ROOT / "train" / "run.py"
    assert seen["others"] == {"pipeline": None, "datasets_manifest": None, "bench": None}
    assert seen["public"] == [True, True]
    assert seen["version"]


def test_import_mesti_is_light() -> None:
    result = subprocess.run([sys.executable, "-c", "import sys, mesti, mesti.pipeline.stores.read; "
                             "print([m for m in ('torch', 'cv2', 'mediapipe', 'dask', 'numba') "
                             "if m in sys.modules])"], capture_output=True, text=True, cwd="/")
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "[]"
