"""Where the harness's jobs run: in this process, or on a Dask cluster.

`harness run`, `harness reproduce` and `harness zoo build` cut their work into jobs (one
submission on one model, or one zoo entry) and hand them to an :class:`Executor`, which
yields each job's result as soon as it is done, so the caller (the coordinator, the only
writer of the results store and of profile indexes) records it before the next one.

- :class:`InProcess` (``--workers 1``) runs the jobs one after another here.
- :class:`DaskExecutor` runs them on ``dask.distributed``: an embedded ``LocalCluster`` of
  ``--workers N`` processes (one TensorFlow thread each), or an existing cluster reached
  with ``--scheduler tcp://HOST:PORT`` (docs/SCALING.md). A job that raises an exception
  there is a fault of the harness, not of a submission, and stops the run as it would here.

Jobs are plain picklable dataclasses and module-level functions, so the same job runs the
same way in both; what a worker keeps between jobs (a warm sandbox, a data set) lives in
per-process caches of the modules that own it.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Protocol, TypeVar

from harness.errors import HarnessError

J = TypeVar("J")
R = TypeVar("R")

#: Environment of every worker process: one TensorFlow (and BLAS) thread each, so N
#: workers use N cores and not N x cores threads fighting over them.
WORKER_ENV = {
    "TF_NUM_INTRAOP_THREADS": "1",
    "TF_NUM_INTEROP_THREADS": "1",
    "OMP_NUM_THREADS": "1",
    "TF_CPP_MIN_LOG_LEVEL": "3",
    "HARNESS_PROGRESS": "0",
}


def quiet_tensorflow() -> None:
    """Keep TensorFlow's Python warnings (retracing notices, mostly) out of a build's log:
    the harness reports what happened to each model itself."""
    logging.getLogger("tensorflow").setLevel(logging.ERROR)


def default_workers() -> int:
    """One worker per core this process may run on (``--workers``' default)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


class Executor(Protocol):
    def map_unordered(self, fn: Callable[[J], R], jobs: Sequence[J]) -> Iterator[tuple[J, R]]:
        """Run ``fn`` on every job; yield (job, result) as each finishes."""
        ...

    def run_on(self, where: Any, fn: Callable[..., R], *args: Any) -> R:
        """Run ``fn(*args)`` on the worker that produced a result (``where``, as the job's
        result names it): how the coordinator fetches what only that worker has."""
        ...

    def broadcast(self, fn: Callable[[], Any]) -> None:
        """Run ``fn()`` once in every worker process (the end of a run: close sandboxes)."""
        ...


class InProcess:
    """The jobs one after another in this process: ``--workers 1``, and the tests."""

    def map_unordered(self, fn: Callable[[J], R], jobs: Sequence[J]) -> Iterator[tuple[J, R]]:
        for job in jobs:
            yield job, fn(job)

    def run_on(self, where: Any, fn: Callable[..., R], *args: Any) -> R:
        return fn(*args)

    def broadcast(self, fn: Callable[[], Any]) -> None:
        fn()


class DaskExecutor:
    """Jobs as Dask tasks, submitted in order (earlier jobs get higher priority) and
    collected as they complete."""

    def __init__(self, client: Any) -> None:
        self.client = client

    def map_unordered(self, fn: Callable[[J], R], jobs: Sequence[J]) -> Iterator[tuple[J, R]]:
        from distributed import KilledWorker, as_completed

        if not jobs:
            return
        # Earlier jobs first: a worker finishes one submission's models before the next
        # submission's, so it keeps few warm sandboxes at a time.
        futures = {
            self.client.submit(fn, job, pure=False, priority=len(jobs) - i): job
            for i, job in enumerate(jobs)
        }
        try:
            for future in as_completed(futures):
                try:
                    result = future.result()
                except KilledWorker as exc:  # the job took down every worker it was given
                    raise HarnessError(
                        f"Dask workers died running a job ({exc})",
                        fix="see the workers' logs (memory, a crash); rerun to finish the "
                        "rest, finished tasks are kept",
                    ) from None
                yield futures[future], result
        finally:
            for future in futures:
                future.cancel()

    def run_on(self, where: Any, fn: Callable[..., R], *args: Any) -> R:
        future = self.client.submit(
            fn, *args, pure=False, workers=[where], allow_other_workers=False
        )
        return future.result()

    def broadcast(self, fn: Callable[[], Any]) -> None:
        self.client.run(fn)


def worker_address() -> str | None:
    """The Dask worker this code runs on (None outside Dask): results name it so the
    coordinator can fetch files from that worker alone."""
    try:
        from distributed import get_worker

        return str(get_worker().address)
    except (ImportError, ValueError):
        return None


@contextlib.contextmanager
def open_executor(workers: int | None = None, scheduler: str | None = None) -> Iterator[Executor]:
    """The executor for ``--workers`` / ``--scheduler``: in process for one worker, an
    embedded LocalCluster for more, or the cluster at ``scheduler``."""
    if scheduler:
        with _client(scheduler) as client:
            yield DaskExecutor(client)
        return
    n = workers or default_workers()
    if n <= 1:
        yield InProcess()
        return
    with _local_cluster(n) as client:
        yield DaskExecutor(client)


@contextlib.contextmanager
def _client(address: str) -> Iterator[Any]:
    from distributed import Client

    try:
        client = Client(address, timeout="20s")
    except (OSError, ValueError) as exc:  # nothing listening; a malformed address
        raise HarnessError(
            f"no Dask scheduler answers at {address}: {exc}",
            fix="give tcp://HOST:PORT of a running `dask scheduler` (docs/SCALING.md), "
            "or drop --scheduler",
        ) from None
    try:
        if not client.scheduler_info().get("workers"):
            try:
                client.wait_for_workers(1, timeout=60)
            except TimeoutError:
                raise HarnessError(
                    f"the Dask scheduler at {address} has no workers (waited 60 s)",
                    fix="start `dask worker` processes against it (docs/SCALING.md)",
                ) from None
        yield client
    finally:
        client.close()


@contextlib.contextmanager
def _local_cluster(n: int) -> Iterator[Any]:
    """N worker processes of one thread each. No memory limit from Dask: its nanny would
    restart a worker whose sandboxed child grows, and the sandbox has its own watchdog.
    No dashboard: the harness runs offline and opens no port but the cluster's own."""
    from distributed import Client, LocalCluster

    env = dict(WORKER_ENV)
    if os.environ.get("TF_CPP_MIN_LOG_LEVEL"):  # the user's choice stands
        env["TF_CPP_MIN_LOG_LEVEL"] = os.environ["TF_CPP_MIN_LOG_LEVEL"]
    cluster = LocalCluster(
        n_workers=n,
        threads_per_worker=1,
        processes=True,
        memory_limit=0,
        dashboard_address=None,
        silence_logs=logging.ERROR,
        env=env,  # set in each worker process before it imports anything
    )
    try:
        with Client(cluster) as client:
            yield client
    finally:
        cluster.close()
