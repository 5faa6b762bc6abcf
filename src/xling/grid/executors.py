"""Executors: hand jobs to an existing engine and give their outcomes back as they finish.

No home-made scheduler: ``local`` runs jobs in this process (or one process per GPU when there are several),
``ray`` submits them as Ray tasks with CPU/GPU requests, ``slurm`` submits submitit jobs (a job array per batch of
submissions). Every executor has the same three verbs — ``submit(job)``, ``wait() -> (job, outcomes)`` for the
next job to finish, and ``capacity`` (how many jobs it runs at once) — so the engine (``xling.grid.engine``) can
submit a job the moment its units' dependencies are published. What a job does is its ``work`` function.
"""

from __future__ import annotations

import os
import time
from collections import deque
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor
from concurrent.futures import wait as wait_futures
from pathlib import Path

from xling.config import ExecutorSpec
from xling.errors import XlingError
from xling.grid.jobs import Job, Outcome, crashed, run_job


def make_executor(spec: ExecutorSpec, output: str | Path):
    """The executor ``spec`` names (a context manager); Slurm logs go under ``output``."""
    if spec.kind == "local":
        return LocalExecutor()
    if spec.kind == "ray":
        return RayExecutor(spec)
    return SlurmExecutor(spec, Path(output))


def _visible_gpus() -> int:
    try:
        import torch
    except ImportError:
        return 0
    return torch.cuda.device_count() if torch.cuda.is_available() else 0


class LocalExecutor:
    """Jobs in this process, one after the other; one worker process per visible GPU when there are several."""

    def __init__(self) -> None:
        self.capacity = max(1, _visible_gpus())
        self.queue: deque[Job] = deque()
        self.pool = None
        self.futures: dict = {}

    def __enter__(self) -> LocalExecutor:
        if self.capacity > 1:
            import multiprocessing as mp

            ctx = mp.get_context("spawn")
            gpu_ids = ctx.Queue()
            for i in range(self.capacity):
                gpu_ids.put(i)
            self.pool = ProcessPoolExecutor(self.capacity, mp_context=ctx, initializer=_pin_gpu, initargs=(gpu_ids,))
        return self

    def submit(self, job: Job) -> None:
        if self.pool is None:
            self.queue.append(job)
        else:
            self.futures[self.pool.submit(run_job, job)] = job

    def wait(self) -> tuple[Job, list[Outcome]]:
        if self.pool is None:
            job = self.queue.popleft()
            return job, run_job(job)
        done, _ = wait_futures(self.futures, return_when=FIRST_COMPLETED)
        fut = next(iter(done))
        job = self.futures.pop(fut)
        try:
            return job, fut.result()
        except Exception as err:  # the worker process died (OOM kill, segfault)
            return job, crashed(job, err)

    def __exit__(self, *exc) -> None:
        if self.pool is not None:
            self.pool.shutdown(cancel_futures=True)


def _pin_gpu(queue) -> None:  # runs once in each worker process
    gpu = queue.get()
    os.environ["CUDA_VISIBLE_DEVICES"] = str(gpu)
    os.environ["XLING_WORKER"] = f"gpu{gpu}"


class RayExecutor:
    """Ray tasks on an existing cluster (``address``) or a local one; GPUs requested only where the cluster has
    them. Ray reuses its worker processes, so what a worker keeps loaded serves its next job too."""

    def __init__(self, spec: ExecutorSpec) -> None:
        try:
            import ray
        except ImportError:
            raise XlingError("executor 'ray' needs ray: pip install 'xling[ray]'") from None
        self.ray, self.spec = ray, spec
        self.refs: dict = {}

    def __enter__(self) -> RayExecutor:
        ray = self.ray
        if not ray.is_initialized():
            _check_reachable(self.spec.address)
            kwargs = {"include_dashboard": False, "log_to_driver": False, "configure_logging": False}
            try:
                if self.spec.address:
                    ray.init(address=self.spec.address, **kwargs)
                else:
                    ray.init(num_cpus=self.spec.num_workers, _node_ip_address="127.0.0.1", **kwargs)
            except (ConnectionError, RuntimeError, ValueError, SystemExit) as err:
                raise XlingError(
                    f"ray: cannot connect to cluster at {self.spec.address!r}: {str(err).splitlines()[0]}"
                ) from None
        resources = ray.cluster_resources()
        self.has_gpus = resources.get("GPU", 0) > 0
        self.capacity = max(1, int(resources.get("CPU", 1) / self.spec.cpus_per_unit))  # Ray queues the rest
        self.remote = ray.remote(run_job)
        return self

    def submit(self, job: Job) -> None:
        opts = {"num_cpus": job.cpus, "num_gpus": job.gpus if self.has_gpus else 0, "max_retries": 0}
        self.refs[self.remote.options(**opts).remote(job)] = job

    def wait(self) -> tuple[Job, list[Outcome]]:
        done, _ = self.ray.wait(list(self.refs), num_returns=1)
        job = self.refs.pop(done[0])
        try:
            return job, self.ray.get(done[0])
        except Exception as err:  # the Ray worker died (OOM kill, node lost)
            return job, crashed(job, err)

    def __exit__(self, *exc) -> None:  # jobs still running publish their units; a rerun finds them
        pass


def _check_reachable(address: str | None, timeout_s: float = 5.0) -> None:
    """Fail fast on a ``host:port`` Ray address nothing listens on (ray.init would wait for minutes)."""
    if not address or address == "auto" or "://" in address:
        return
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise XlingError(f"ray: address {address!r} is not 'auto' or HOST:PORT")
    import socket

    try:
        socket.create_connection((host, int(port)), timeout=timeout_s).close()
    except OSError as err:
        raise XlingError(f"ray: cannot connect to cluster at {address!r}: {err.strerror or err}") from None


class SlurmExecutor:
    """submitit jobs (``slurm.cluster: local`` runs the same jobs as local subprocesses, for tests). Jobs submitted
    between two waits go out together as one job array."""

    def __init__(self, spec: ExecutorSpec, output: Path) -> None:
        try:
            import submitit
        except ImportError:
            raise XlingError("executor 'slurm' needs submitit: pip install 'xling[slurm]'") from None
        s = spec.slurm
        self.executor = submitit.AutoExecutor(
            folder=Path(s.folder) if s.folder else output / "slurm" / "%j", cluster=s.cluster
        )
        params = {"timeout_min": s.time_min, "cpus_per_task": s.cpus_per_task, "mem_gb": s.mem_gb}
        if self.executor.cluster == "slurm":
            params |= {
                "slurm_partition": s.partition,
                "gpus_per_node": s.gpus_per_node,
                "slurm_array_parallelism": s.array_parallelism,
                "slurm_additional_parameters": dict(s.additional_parameters),
            }
            params = {k: v for k, v in params.items() if v is not None}
        self.executor.update_parameters(**params)
        self.capacity = s.array_parallelism
        self.queued: list[Job] = []
        self.pending: list[tuple[object, Job]] = []

    def __enter__(self) -> SlurmExecutor:
        return self

    def submit(self, job: Job) -> None:
        self.queued.append(job)

    def wait(self) -> tuple[Job, list[Outcome]]:
        if self.queued:
            submitted = self.executor.map_array(run_job, self.queued)
            self.pending += list(zip(submitted, self.queued))
            self.queued = []
        while True:
            for i, (sjob, job) in enumerate(self.pending):
                if sjob.done():
                    del self.pending[i]
                    try:
                        return job, sjob.result()
                    except Exception as err:  # the array task died (time limit, OOM kill, node failure)
                        return job, crashed(job, err)
            time.sleep(0.5)

    def __exit__(self, *exc) -> None:  # array tasks still running publish their units; a rerun finds them
        pass
