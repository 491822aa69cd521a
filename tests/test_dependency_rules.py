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
    ("mesti.pipeline.stores.export",
     ["mediapipe", "numba", "dask", "distributed", "torch", "cv2"]),
    ("mesti.pipeline.stores.info", ["mediapipe", "numba", "dask", "distributed", "torch", "cv2"]),
])
def test_module_imports_without(module: str, blocked: list[str]) -> None:
    result = import_with_blocked(f"import {module}", blocked)
    assert result.returncode == 0, result.stderr[-2000:]


def test_only_the_orchestration_imports_dask() -> None:
    modules = ("pooling.apex", "faces.align", "faces.decode", "pooling.kernels", "stores.read",
               "sample.generator", "figures", "runner.stages", "stores.write", "pooling.weights",
               "stores.verify", "stores.info", "stores.export", "runner.sequences")
    code = "import " + ", ".join(f"mesti.pipeline.{name}" for name in modules)
    result = import_with_blocked(code, ["dask", "distributed"])
    assert result.returncode == 0, result.stderr[-2000:]


def test_blocking_really_blocks() -> None:
    result = import_with_blocked(
        "import mesti.pipeline.runner.run; mesti.pipeline.runner.run.dask_client", ["numba"])
    assert result.returncode != 0 and "numba" in result.stderr


# The import graph, read from the source with ``ast`` (no module is imported): every import
# statement anywhere in a module, lazy ones inside functions included.
PACKAGE_DIRS = {"mesti": ROOT / "mesti", "mesti.pipeline": ROOT / "pipeline",
                "mesti.train": ROOT / "train",
                "mesti.datasets_manifest": ROOT / "datasets_manifest"}
# Pipeline rooms, lowest first: a room may import only rooms before it (pipeline/__init__.py).
ROOMS = ("stores", "faces", "pooling", "motion", "sample", "runner", "spotting", "figures")


def module_files() -> dict[str, Path]:
    """Every module of the installed ``mesti`` package, by dotted name."""
    found = {}
    for package, folder in PACKAGE_DIRS.items():
        for path in folder.rglob("*.py"):
            parts = path.relative_to(folder).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join((package, *parts))] = path
    return found


def imports_of(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The ``mesti`` modules (and outside top-level packages) that ``name`` imports."""
    import ast

    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    targets = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module
            for alias in node.names:
                submodule = f"{source}.{alias.name}"
                targets.add(submodule if submodule in modules else source)
    return targets


def import_graph() -> dict[str, set[str]]:
    modules = module_files()
    return {name: imports_of(name, path, modules) for name, path in modules.items()}


def circles(graph: dict[str, set[str]]) -> list[set[str]]:
    """The strongly connected components of more than one module (Tarjan), or self-imports."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph.get(node, ()):
            if target not in graph:
                continue
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.add(member)
                if member == node:
                    break
            if len(component) > 1 or node in graph[node]:
                found.append(component)

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_circle_finder_finds_circles() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": {"e"}, "f": set()}
    assert sorted(map(sorted, circles(graph))) == [["a", "b", "c"], ["e"]]


def test_the_graph_sees_relative_and_lazy_imports() -> None:
    graph = import_graph()
    assert "mesti.pipeline.stores.read" in graph["mesti.pipeline.stores.write"]
    assert "mesti.pipeline.faces.align" in graph["mesti.pipeline.runner.stages"]  # from .. import
    assert "distributed" in graph["mesti.pipeline.runner.run"]  # imported inside a function
    assert "mesti.cache_cli" in graph["mesti.cli"]


def test_every_import_of_mesti_names_a_module_that_is_there() -> None:
    """An import of a moved or misspelt module (lazy ones, which only fail when run,
    included) would otherwise pass unseen: the circle check skips what it cannot find."""
    graph = import_graph()
    missing = sorted(f"{module} imports {target}" for module, targets in graph.items()
                     for target in targets
                     if target.split(".")[0] == "mesti" and target not in graph)
    assert missing == []


def test_no_module_imports_one_that_imports_it_back() -> None:
    found = list(circles(import_graph()))
    assert found == [], f"import circles: {[sorted(c) for c in found]}"


def room_of(module: str) -> str | None:
    parts = module.split(".")
    return parts[2] if parts[:2] == ["mesti", "pipeline"] and len(parts) > 2 else None


def test_rooms_import_only_rooms_before_them() -> None:
    broken = []
    for module, targets in import_graph().items():
        room = room_of(module)
        if room is None:
            continue
        assert room in ROOMS, f"{module}: room {room!r} has no place in ROOMS"
        for target in targets:
            other = room_of(target)
            if other not in (None, room) and (other not in ROOMS
                                              or ROOMS.index(other) > ROOMS.index(room)):
                broken.append(f"{module} imports {target}")
    assert broken == []


def test_the_pipeline_keeps_its_outside_imports_in_their_rooms() -> None:
    """Only the runner imports Dask; nothing in the pipeline imports torch or the trainer."""
    broken = []
    for module, targets in import_graph().items():
        if room_of(module) is None and module != "mesti.pipeline":
            continue
        for target in targets:
            top = target.split(".")[0]
            if top in ("dask", "distributed", "dask_jobqueue") and room_of(module) != "runner":
                broken.append(f"{module} imports {target}")
            if top == "torch" or target.startswith("mesti.train"):
                broken.append(f"{module} imports {target}")
    assert broken == []


def test_each_room_opens_with_a_docstring_naming_its_subject() -> None:
    import ast

    rooms = [path.parent for path in (ROOT / "pipeline").glob("*/__init__.py")]
    assert {room.name for room in rooms} >= {"stores", "faces", "pooling", "motion", "sample",
                                             "runner"}
    for room in rooms:
        doc = ast.get_docstring(ast.parse((room / "__init__.py").read_text())) or ""
        assert room.name in doc.splitlines()[0].lower() if doc else False, room
        assert "import" in doc, f"{room}: the docstring says not what the room may import"
