"""Where a stage's tasks run: the cluster options and the Dask client they give.

By default a LocalCluster sized to the machine (one single-threaded worker process per
core); ``scheduler`` or ``scheduler_file`` connect to any Dask deployment (``dask
scheduler``/``dask worker``, dask-jobqueue on SLURM or PBS, ...) whose workers see the same
paths. ``workers=0`` runs in this process without Dask, for debugging. With ``run.py``, the
only modules that import Dask.
"""

from __future__ import annotations

import logging
import os
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ClusterOptions:
    """Where the tasks run (command-line options, not knobs: they change no output)."""

    scheduler: str | None = None
    scheduler_file: str | None = None
    workers: int | None = None      # LocalCluster size; default one per core; 0: no Dask
    progress: bool = True
    jobqueue: str | None = None     # a dask-jobqueue cluster class: slurm, pbs, sge, lsf, ...
    jobs: int = 1                   # jobs to submit with ``jobqueue``

    def __post_init__(self) -> None:
        if self.workers is not None and (isinstance(self.workers, bool)
                                         or not isinstance(self.workers, int)
                                         or self.workers < 0):
            raise ValueError(f"workers must be 0 (no Dask) or a positive number of worker "
                             f"processes, not {self.workers!r}")
        if isinstance(self.jobs, bool) or not isinstance(self.jobs, int) or self.jobs < 1:
            raise ValueError(f"jobs must be a positive number of batch jobs, not {self.jobs!r}")


class ClusterError(RuntimeError):
    """The cluster options cannot be used: scheduler unreachable, job queue unknown or
    not configured. Raised before any task runs."""


SCHEDULER_CONNECT_TIMEOUT_S = 10  # seconds to reach --scheduler before giving up


def jobqueue_cluster(name: str):
    """A dask-jobqueue cluster (SLURMCluster, PBSCluster, ...) configured by Dask's own
    configuration (``~/.config/dask/jobqueue.yaml``), not by this project."""
    try:
        import dask_jobqueue
    except ImportError as error:
        raise ClusterError("--jobqueue needs the 'cluster' extra: pip install "
                           "'mesti-mer[cluster]'") from error
    classes = {c[: -len("Cluster")].lower(): getattr(dask_jobqueue, c)
               for c in dir(dask_jobqueue) if c.endswith("Cluster") and c != "JobQueueCluster"}
    if name.lower() not in classes:
        raise ClusterError(f"--jobqueue {name!r}: unknown job queue; dask-jobqueue has "
                           f"{sorted(classes)}")
    try:
        return classes[name.lower()]()
    except (ValueError, TypeError, OSError) as error:
        raise ClusterError(f"--jobqueue {name!r}: not configured ({' '.join(str(error).split())}"
                           "); set it in Dask's "
                           "jobqueue.yaml") from error


def _connect(cluster: ClusterOptions):
    from distributed import Client

    where = cluster.scheduler or f"the scheduler file {cluster.scheduler_file}"
    if not cluster.scheduler and not Path(cluster.scheduler_file).is_file():
        raise ClusterError(f"--scheduler-file {cluster.scheduler_file}: no such file")
    try:
        return Client(cluster.scheduler, scheduler_file=cluster.scheduler_file,
                      timeout=SCHEDULER_CONNECT_TIMEOUT_S)
    except (OSError, TimeoutError, ValueError) as error:
        raise ClusterError(f"--scheduler: cannot reach {where} within "
                           f"{SCHEDULER_CONNECT_TIMEOUT_S} s ({' '.join(str(error).split())})"
                           ) from error


@contextmanager
def dask_client(cluster: ClusterOptions) -> Iterator:
    """A Dask client for ``cluster``: a running scheduler, a job queue, or a LocalCluster
    set up as the stages need it (the benchmark uses the same one)."""
    from distributed import Client, LocalCluster

    if cluster.scheduler or cluster.scheduler_file:
        with _connect(cluster) as client:
            yield client
        return
    if cluster.jobqueue:
        with jobqueue_cluster(cluster.jobqueue) as batch, Client(batch) as client:
            batch.scale(jobs=cluster.jobs)
            yield client
        return
    import dask

    workers = cluster.workers or os.cpu_count() or 1
    # Dask blames every task a dying worker holds; holding only the running one keeps an
    # innocent clip from being quarantined beside the clip that kills its worker.
    # Dask's MALLOC_TRIM_THRESHOLD_ turns off glibc's adaptive mmap threshold, so every
    # decoded frame becomes a fresh mapping full of page faults: the faces stage ran 37%
    # slower with it. Our workers allocate the same sizes clip after clip, so it is left
    # out (bench/ checks that peak memory per worker stays flat); the thread caps stay.
    environ = {k: v for k, v in dask.config.get("distributed.nanny.pre-spawn-environ").items()
               if k != "MALLOC_TRIM_THRESHOLD_"}
    settings = {"distributed.scheduler.worker-saturation": 1.0,
                "distributed.nanny.pre-spawn-environ": environ}
    quiet = _QuietShutdown()
    with dask.config.set(settings), quiet, \
            LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                         dashboard_address=None, preload=[__name__]) as local, \
            Client(local) as client:
        try:
            yield client
        except KeyboardInterrupt:
            quiet.now()  # stopping busy workers is expected now, not worth a warning
            raise


class _QuietShutdown:
    """Keeps Dask's warnings about workers stopped mid-task out of an interrupted run's
    output (the caller says what state the stores are in), restoring the level after."""

    def __enter__(self) -> _QuietShutdown:
        self.logger = logging.getLogger("distributed")
        self.level = self.logger.level
        return self

    def now(self) -> None:
        self.logger.setLevel(logging.ERROR)

    def __exit__(self, *exc: object) -> None:
        self.logger.setLevel(self.level)


class _QuietWhenClosing(logging.Filter):
    """Drops a worker's log lines once it is being stopped: a stopped run cancels its tasks
    and closes the scheduler under busy workers, and what they say then is no news."""

    def __init__(self, worker: object):
        super().__init__()
        self.worker = worker

    def filter(self, record: logging.LogRecord) -> bool:
        status = getattr(getattr(self.worker, "status", None), "name", "")
        return status not in ("closing", "closed", "closing_gracefully", "failed")


def dask_setup(worker: object) -> None:
    """Dask's preload hook (this module is each LocalCluster worker's preload), run in every
    worker process as it starts, a restarted one too.

    Ctrl-C in a terminal reaches every process of its group: the workers ignore it, and the
    parent alone stops the run and says what state the stores are in, instead of each worker
    dying with its own traceback.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    quiet = _QuietWhenClosing(worker)
    for handler in {*logging.getLogger("distributed").handlers, *logging.getLogger().handlers}:
        handler.addFilter(quiet)
