"""Executors: hand jobs to an existing engine and yield their outcomes as they finish.

No home-made scheduler: ``local`` runs jobs in this process (or one process per GPU when there are several),
``ray`` submits them as Ray tasks with CPU/GPU requests, ``slurm`` submits a submitit job array. Each executor
only moves ``Job`` objects to workers and brings back lists of ``Outcome``; what a job does is in ``work.py``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

from xling.config import ExecutorSpec
from xling.errors import XlingError
from xling.grid.store import Store
from xling.grid.work import Job, Outcome, run_job


def execute(jobs: Sequence[Job], spec: ExecutorSpec, root: Path) -> Iterator[list[Outcome]]:
    """Run ``jobs`` on the executor named in ``spec``; yield each job's outcomes as it completes."""
    if not jobs:
        return iter(())
    if spec.kind == "local":
        return _local(jobs)
    if spec.kind == "ray":
        return _ray(jobs, spec)
    return _slurm(jobs, spec, root)


def _visible_gpus() -> int:
    try:
        import torch
    except ImportError:
        return 0
    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def _local(jobs: Sequence[Job]) -> Iterator[list[Outcome]]:
    """Sequential in this process; one worker process per visible GPU when there are several."""
    n_gpus = _visible_gpus()
    if n_gpus <= 1:
        for job in jobs:
            yield run_job(job)
        return
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    gpu_ids = ctx.Queue()
    for i in range(n_gpus):
        gpu_ids.put(i)
    with ProcessPoolExecutor(n_gpus, mp_context=ctx, initializer=_pin_gpu, initargs=(gpu_ids,)) as pool:
        futures = {pool.submit(run_job, job): job for job in jobs}
        for fut in as_completed(futures):
            try:
                yield fut.result()
            except Exception as err:  # the worker process died (OOM kill, segfault)
                yield crashed(futures[fut], err)


def _pin_gpu(queue) -> None:  # runs once in each worker process
    gpu = queue.get()
    os.environ["CUDA_VISIBLE_DEVICES"] = str(gpu)
    os.environ["XLING_WORKER"] = f"gpu{gpu}"


def _ray(jobs: Sequence[Job], spec: ExecutorSpec) -> Iterator[list[Outcome]]:
    """Ray tasks on an existing cluster (``address``) or a local one; GPUs requested only where the cluster has them."""
    try:
        import ray
    except ImportError:
        raise XlingError("executor 'ray' needs ray: pip install 'xling[ray]'") from None
    from xling.grid.units import TrainUnit

    if not ray.is_initialized():
        _check_reachable(spec.address)
        kwargs = {"include_dashboard": False, "log_to_driver": False, "configure_logging": False}
        try:
            if spec.address:
                ray.init(address=spec.address, **kwargs)
            else:
                ray.init(num_cpus=spec.num_workers, _node_ip_address="127.0.0.1", **kwargs)
        except (ConnectionError, RuntimeError, ValueError, SystemExit) as err:
            raise XlingError(f"ray: cannot connect to cluster at {spec.address!r}: {str(err).splitlines()[0]}") from None
    has_gpus = ray.cluster_resources().get("GPU", 0) > 0
    remote = ray.remote(run_job)
    refs = {}
    for job in jobs:
        gpus = spec.gpus_per_train if isinstance(job.units[0], TrainUnit) else spec.gpus_per_score
        opts = {"num_cpus": spec.cpus_per_unit, "num_gpus": gpus if has_gpus else 0, "max_retries": 0}
        refs[remote.options(**opts).remote(job)] = job
    pending = list(refs)
    while pending:
        done, pending = ray.wait(pending, num_returns=1)
        try:
            yield ray.get(done[0])
        except Exception as err:  # the Ray worker died (OOM kill, node lost)
            yield crashed(refs[done[0]], err)


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


def _slurm(jobs: Sequence[Job], spec: ExecutorSpec, root: Path) -> Iterator[list[Outcome]]:
    """A submitit job array (``slurm.cluster: local`` runs the same array as local subprocesses, for tests)."""
    try:
        import submitit
    except ImportError:
        raise XlingError("executor 'slurm' needs submitit: pip install 'xling[slurm]'") from None
    s = spec.slurm
    folder = Path(s.folder) if s.folder else root / "slurm" / "%j"
    executor = submitit.AutoExecutor(folder=folder, cluster=s.cluster)
    params = {"timeout_min": s.time_min, "cpus_per_task": s.cpus_per_task, "mem_gb": s.mem_gb}
    if executor.cluster == "slurm":
        params |= {"slurm_partition": s.partition, "gpus_per_node": s.gpus_per_node,
                   "slurm_array_parallelism": s.array_parallelism,
                   "slurm_additional_parameters": dict(s.additional_parameters)}
        params = {k: v for k, v in params.items() if v is not None}
    executor.update_parameters(**params)
    submitted = executor.map_array(run_job, list(jobs))
    pending = list(zip(submitted, jobs))

    while pending:
        still = []
        for sjob, job in pending:
            if not sjob.done():
                still.append((sjob, job))
                continue
            try:
                yield sjob.result()
            except Exception as err:  # the array task died (time limit, OOM kill, node failure)
                yield crashed(job, err)
        pending = still
        if pending:
            time.sleep(0.5)


def crashed(job: Job, err: BaseException) -> list[Outcome]:
    """Outcomes for a job whose worker died before it could report: each unfinished unit failed."""
    store = Store(job.store_root)
    message = f"worker died: {type(err).__name__}: {str(err).strip().splitlines()[0] if str(err).strip() else ''}"[:500]
    out = []
    for u in job.units:
        if store.done(u.key):
            out.append(Outcome(u.key, ok=True))
        else:
            store.record_failure(u.key, message)
            out.append(Outcome(u.key, ok=False, error=message))
    return out
