"""Task functions that kill their own worker, for the fault-injection tests.

They live in an importable module because Dask's spawned workers import them by name.
"""

import os
import signal
from pathlib import Path


def kill_worker_for(item: str, marker_dir: str) -> dict:
    """'always' kills every worker that runs it; 'once' only the first; others succeed."""
    marker = Path(marker_dir) / f"{item}.attempt"
    with marker.open("a") as handle:
        handle.write(f"{os.getpid()}\n")
    if item == "always" or (item == "once" and len(marker.read_text().split()) == 1):
        os.kill(os.getpid(), signal.SIGKILL)
    return {"clip_id": item, "status": "ok"}


def kill_fold_once(task: dict, marker_dir: str, victim: int, always: bool = False) -> dict:
    """A training fold task whose fold ``victim`` kills its worker on its first attempt (on
    every attempt with ``always``)."""
    marker = Path(marker_dir) / f"fold_{task['number']:03d}.attempt"
    with marker.open("a") as handle:
        handle.write(f"{os.getpid()}\n")
    if task["number"] == victim and (always or len(marker.read_text().split()) == 1):
        os.kill(os.getpid(), signal.SIGKILL)
    from mesti.train.cluster import run_fold_task

    return run_fold_task(task)


def group_alive(group: int) -> bool:
    """Whether any process of the process group ``group`` is still alive."""
    try:
        os.killpg(group, 0)
        return True
    except (ProcessLookupError, PermissionError):
        return False
