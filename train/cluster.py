"""Fold tasks on the runner's Dask cluster: the one place training reaches the runner.

The cluster options and the client come from the runner
(``mesti.pipeline.runner.cluster``), the only room that imports Dask, so ``mesti train``
runs where ``mesti preprocess`` runs (local processes, a running scheduler,
dask-jobqueue). This module imports no torch: a worker
unpickles :func:`run_fold_task` and its plain task, sets the once-read CPU variables of
train/determinism.py and only then starts torch, so every fold runs pinned kernels even on
workers started without them.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

from mesti.pipeline.runner.cluster import ClusterOptions, dask_client

__all__ = ["ClusterOptions", "FoldLost", "run_fold_task", "submit_all"]


class FoldLost(RuntimeError):
    """A fold whose worker died on every attempt Dask allows."""


def run_fold_task(task: dict) -> dict:
    """One fold in a worker: pin the CPU kernels before torch starts, then train."""
    if task["config"].get("deterministic", True):
        from .determinism import pin_process

        pin_process()
    from .folds import fold_result

    return fold_result(task)


def submit_all(tasks: list[dict], kept: list[dict | None], cluster: ClusterOptions,
               function: Callable[[dict], dict] | None = None) -> Iterator[dict]:
    """Every task's result in task order: ``kept`` ones as they are, the others computed on
    the cluster by ``function`` (default :func:`run_fold_task`; all submitted at once, each
    writes its own result file as it finishes)."""
    run = uuid.uuid4().hex[:8]
    with dask_client(cluster) as client:
        futures = {number: client.submit(function or run_fold_task, task, pure=False,
                                         key=f"fold-{task['number']:03d}-{run}")
                   for number, (task, result) in enumerate(zip(tasks, kept, strict=True))
                   if result is None}
        for number, task in enumerate(tasks):
            if number not in futures:
                yield kept[number]
                continue
            try:
                yield futures[number].result()  # an exception in a fold is a bug: it stops
            except Exception as error:
                if type(error).__name__ != "KilledWorker":
                    raise
                raise FoldLost(f"fold {task['name']}: its worker died on every attempt Dask "
                               f"allows ({' '.join(str(error).split())}); the folds finished "
                               "are kept in the run folder: run again to train the rest"
                               ) from error


def run_folds(tasks: list[dict], cluster: ClusterOptions | None, data: tuple,
              log: Callable[[str, dict], None]) -> Iterator[tuple[dict, bool]]:
    """Each task's result in fold order, with whether its epochs were logged while it ran:
    kept results first reused, the others trained in this process (``cluster`` None or
    ``workers == 0``) or as Dask tasks of the runner's cluster."""
    from . import folds

    kept = [folds.finished(task) for task in tasks]
    if cluster is None or (cluster.workers == 0 and not cluster.scheduler
                           and not cluster.scheduler_file and not cluster.jobqueue):
        for task, result in zip(tasks, kept, strict=True):
            if result is not None:
                yield result, False
            else:
                yield folds.fold_result(
                    task, data, lambda row, name=task["name"]: log(name, row)), True
        return
    yield from ((result, False)
                for result in submit_all(tasks, kept, cluster, folds.FOLD_TASK))
