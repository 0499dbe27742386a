"""Sweeps, the running side: every variant of a sweep (:mod:`dltspec.sweeps.variants`) is one task on Dask
distributed, trained in its own run directory; the results are ranked by validation error.

::

    sweeps/<spec name>/          (or --out DIR)
        sweep.json               the spec file, its overrides, every variant with its key and values
        results.jsonl            one record per variant that ended, appended and fsync'ed as it ends
        results.csv, results.json  the results ranked by best validation error (rewritten atomically)
        runs/<key>/              each variant's run directory (see dltspec.training.rundir)

A variant's key is a hash of the spec it trains (:func:`dltspec.sweeps.variants.variant_key`), so running
the same sweep again skips the variants that already ended and trains only the others; a variant
whose worker died goes on from its run directory's last checkpoint when it is tried again.

The client (``dltspec sweep``) checks every variant, data included, before anything runs; workers
only train. Workers need dltspec installed and, on a cluster of several machines, the data and
the sweep directory at the same paths (a shared file system): the client keeps the results it is
sent whatever happens to the run directories.
"""
from __future__ import annotations

import functools
import json
import os
import socket
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from dltspec import pipeline as api
from dltspec.diagnostics import Diagnostic, SpecError
from dltspec.lang.spec import Spec
from dltspec.sweeps.sweepdir import (  # noqa: F401
    RESULTS_CSV,
    RESULTS_JSON,
    RESULTS_LOG,
    RUNS,
    SWEEP,
    SweepDir,
    SweepError,
    csv_text,
    percent,
    ranked,
    short_names,
    table,
)
from dltspec.sweeps.variants import Variant, merged, stack_key, variant_key, variants
from dltspec.training.rundir import RunDir, RunError

DEFAULT_ROOT = Path("sweeps")
#: statuses of a variant that ended for good: a re-run sweep does not train it again
ENDED = ("finished", "diverged")
#: each worker process trains with one thread: the cores go to the workers, not to BLAS or XLA inside one
#: (and JAX on a GPU takes memory as it needs it, so that workers can share one)
WORKER_ENV = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
              "XLA_FLAGS": "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1",
              "XLA_PYTHON_CLIENT_PREALLOCATE": "false"}


# -- the task a worker runs -------------------------------------------------------

@dataclass(frozen=True)
class Task:
    """Everything a worker needs to train one variant (plain data: it travels to the worker)."""

    key: str
    index: int
    name: str  # the spec's name
    spec_text: str  # the variant as it runs: overrides applied, defaults written, data path absolute
    base_dir: str
    run_dir: str
    backend: str
    floatX: str
    device: str | None
    budget: int | None
    hparams: tuple[tuple[str, object], ...] = ()  # the swept values, as the variant's TensorBoard events name them
    stack_key: str | None = None  # variants of equal keys may train in one stack (dltspec.sweeps.stacked)


def use_worker_cache() -> str | None:
    """On a Dask worker, before PyTensor is imported: give this worker its own PyTensor compile cache,
    ``<base_compiledir>/dltspec-worker-<worker name>`` (the base being ``PYTENSOR_FLAGS``'s, else
    ``~/.pytensor``), so that workers compiling at once never wait on each other's cache lock and a
    worker of the same name finds its graphs again in the next sweep. Returns the folder, or ``None``
    where nothing was changed (not a worker, or PyTensor already imported)."""
    import sys

    try:
        from distributed import get_worker

        name = get_worker().name
    except (ImportError, ValueError):
        return None
    if "pytensor" in sys.modules:
        return None
    flags = [f for f in os.environ.get("PYTENSOR_FLAGS", "").split(",") if f.strip()]
    base = next((f.split("=", 1)[1] for f in flags if f.strip().startswith("base_compiledir=")),
                str(Path("~/.pytensor").expanduser()))
    if Path(base).name.startswith("dltspec-worker-"):
        return base
    folder = str(Path(base) / f"dltspec-worker-{name}")
    os.environ["PYTENSOR_FLAGS"] = ",".join([f for f in flags if not f.strip().startswith("base_compiledir=")]
                                            + [f"base_compiledir={folder}"])
    return folder


def worker_environment() -> None:
    """On a worker, before anything is compiled: one thread per worker unless its cluster said otherwise
    (workers started by hand; read when jax first starts), and the worker's own compile cache."""
    for name, value in WORKER_ENV.items():
        os.environ.setdefault(name, value)
    use_worker_cache()


def worker_env(threads: int) -> dict[str, str]:
    """The environment of a local cluster's workers, each of ``threads`` threads (:data:`WORKER_ENV` for one)."""
    if threads <= 1:
        return dict(WORKER_ENV)
    return {**{name: str(threads) for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")},
            "XLA_FLAGS": "", "XLA_PYTHON_CLIENT_PREALLOCATE": "false"}


def train_variant(task: Task, splits=None) -> dict:
    """Train one variant in ``task.run_dir`` (going on from its checkpoint if an earlier try left
    one) and return its record (``splits``: its data, where the caller has loaded it already). Runs on
    a Dask worker; a problem it can name (data missing on this machine, a disk that fails) is a
    ``failed`` record, not an exception."""
    worker_environment()
    from dltspec.training.record import begin

    started = time.perf_counter()
    where = {"worker": socket.gethostname(), "pid": os.getpid()}
    run_path = Path(task.run_dir)
    summary = RunDir(run_path).summary()
    if summary.get("status") in ENDED:  # it ended, but the client stopped before it heard
        return {**summary_record(task, summary), "wall_seconds": 0.0, **where}
    try:
        spec = api.read(text=task.spec_text, file=f"{task.name}.dlt", base_dir=task.base_dir)
        splits = splits if splits is not None else api.load_data(spec)
        begun = begin(spec, lambda: api.compile_training(spec, backend=task.backend, floatX=task.floatX, splits=splits,
                                                         device=task.device, budget=task.budget),
                      task.backend, task.floatX, task.device, resume_from=run_path, source=splits.source, restart=True,
                      hparams=dict(task.hparams))
        recorder = begun.recorder
        begun.training.run(recorder)
    except SpecError as exc:
        return failed_record(task, "; ".join(d.message for d in exc.diagnostics), **where)
    except RunError as exc:
        return failed_record(task, str(exc), **where)
    return {**summary_record(task, recorder.summary), "wall_seconds": round(time.perf_counter() - started, 3),
            **where}


def summary_record(task: Task, summary: dict) -> dict:
    """A variant's record from its run's ``summary.json`` (as the recorder wrote it at the end)."""
    figures = ("best_validation_error", "test_error", "epochs", "iterations", "seconds", "stopped_by", "backend",
               "floatX")
    return {"key": task.key, "index": task.index, "status": summary.get("status"),
            **{name: summary.get(name) for name in figures}, "resumed": bool(summary.get("resumed")),
            "run": task.run_dir, "reason": "; ".join(summary.get("problems") or []) or None}


def failed_record(task: Task, reason: str, **extra) -> dict:
    return {**summary_record(task, {"status": "failed"}), "reason": reason, **extra}


# -- planning: every variant checked, with its data -----------------------------------

#: a variant that passed its checks: the variant, its spec, where its data is read from, its data's sizes
#: (inputs, classes)
Passed = tuple[Variant, Spec, "Path | None", tuple[int, int]]

@dataclass(frozen=True)
class Planned:
    """One variant ready to run, and the task that trains it."""

    variant: Variant
    task: Task

    @property
    def key(self) -> str:
        return self.task.key


def with_data(spec: Spec, ready: list[tuple[Variant, Spec]]) -> tuple[list[Passed],
                                                                       list[Diagnostic]]:
    """The spec as written, then its valid variants (``ready``, from :func:`dltspec.sweeps.variants.checked_variants`),
    checked against their data as ``dltspec check --data`` checks a spec: the variants that pass, with
    the file or folder their data is read from and its sizes (:data:`Passed`), and every problem. A
    problem of the spec's own data is reported once, where it is written; a variant's, at the sweep
    value that produced it. The variants are taken data set by data set, so each is loaded once, and
    one at a time (a sweep over a data set's seed never holds them all)."""
    from itertools import groupby

    from dltspec import checks as rules
    from dltspec.data import loaders as datasets

    try:
        own = api.load_data(spec)
    except SpecError as exc:
        return [], exc.diagnostics
    if not ready:  # no sweep: the spec's own data warnings (its errors were raised)
        return [], [d for d in rules.check_data(spec, own) if not d.is_error]

    def dataset_of(checked: Spec) -> str:
        return json.dumps(checked.block("dataset"), sort_keys=True)

    def order(item: tuple[Variant, Spec]) -> tuple[bool, str]:  # the spec's own data set first: loaded already
        return dataset_of(item[1]) != dataset_of(spec), dataset_of(item[1])

    passed, problems, splits = [], [], None
    for (other, _), group in groupby(sorted(ready, key=order), key=order):
        group = list(group)
        splits = None  # the data set before is dropped first
        try:
            splits = datasets.load(group[0][1].block("dataset"), group[0][1].source.base_dir) if other else own
        except datasets.DataError as exc:
            problems += [(api.data_diagnostic(checked, exc), variant) for variant, checked in group]
            continue
        finally:
            own = None
        for variant, checked in group:
            found = rules.check_data(checked, splits)  # errors stop the variant; warnings are reported too
            problems += [(d, variant) for d in found]
            if not any(d.is_error for d in found):
                sizes = (splits.n_in, splits.n_out(checked.block("classifier")))
                passed.append((variant, checked, splits.source, sizes))
    passed.sort(key=lambda p: p[0].index)
    problems.sort(key=lambda p: p[1].index)  # each problem names the first variant that has it
    return passed, merged(problems, len(spec.source.overrides), len(variants(spec)), spec.positions)


def hparams_of(variant: Variant) -> tuple[tuple[str, object], ...]:
    """A variant's swept values as TensorBoard's HParams plugin takes them (a list of layer sizes as spec text)."""
    from dltspec.training.tensorboard import hparam_value

    return tuple((key, hparam_value(value)) for key, value in variant.values.items())


def tensorboard_problems(passed: list[Passed]) -> list[Diagnostic]:
    """DLT505 at the first variant's ``run.tensorboard`` when variants ask for TensorBoard events and
    tensorboardX is not installed here (checked before the cluster starts)."""
    from dltspec.training import tensorboard

    asking = [checked for _variant, checked, _source, _sizes in passed if tensorboard.wanted(checked.data)]
    problem = asking and tensorboard.missing()
    if not problem:
        return []
    return tensorboard.TensorBoardMissing(problem).as_diagnostics(asking[0].positions.value(("run", "tensorboard")))


def stacks_pay(spec: Spec, sizes: tuple[int, int], device: str | None) -> bool:
    """Whether stacking ``spec``'s variants may pay on ``device`` (its data of ``sizes``, inputs and classes):
    anywhere but on a CPU, and there while two of its variants' parameters fit a core's cache
    (:func:`dltspec.backends.stack_limits.pays_on_cpu`). JAX's default device (``None``) counts as a GPU where
    jax's CUDA plugin is installed (the client does not start JAX to ask: that takes seconds; the worker,
    which knows its device, trains a variant alone where its stack would not pay)."""
    from dltspec.backends.stack_limits import pays_on_cpu

    if pays_on_cpu(spec, *sizes):
        return True
    if device is not None:
        return device != "cpu"
    return cuda_plugin_installed()


@functools.lru_cache(maxsize=1)
def cuda_plugin_installed() -> bool:
    """Whether a jax CUDA plugin is installed here (``pip install 'dltspec[gpu]'``), without importing jax."""
    from importlib import metadata

    return any((d.metadata["Name"] or "").lower().startswith("jax-cuda") for d in metadata.distributions())


def plan(spec: Spec, passed: list[Passed], out: Path, backend: str, floatX: str,
         device: str | None, budget: int | None) -> list[Planned]:
    """The task of each variant that passed its checks (:func:`with_data`), training it in ``out``'s
    ``runs/<key>``."""
    from dltspec.training.provenance import spec_as_run

    planned = []
    for variant, checked, source, sizes in passed:
        key = variant_key(checked, floatX)
        planned.append(Planned(variant, Task(key, variant.index, spec.name, spec_as_run(checked, source),
                                             str(checked.source.base_dir), str((out / RUNS / key).resolve()),
                                             backend, floatX, device, budget, hparams_of(variant),
                                             stack_key(checked) if stacks_pay(checked, sizes, device) else None)))
    return planned


# -- running on Dask ---------------------------------------------------------------------

def dask_modules():
    """``(dask, distributed)``; :class:`SweepError` saying how to install them if they are missing."""
    try:
        import dask
        import distributed
    except ImportError:
        raise SweepError("dltspec sweep runs on Dask, which is not installed: pip install 'dltspec[sweep]'") from None
    return dask, distributed


def local_workers() -> int:
    """One worker per core this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def connect(scheduler: str | None, n_workers: int | None, timeout: float = 30):
    """A Dask client: of the cluster at ``scheduler``, else of a new in-process ``LocalCluster`` with
    ``n_workers`` worker processes (default: one per core), the cores shared out among them (one thread
    each when there are as many workers as cores). Returns ``(client,
    cluster)``; ``cluster`` is ``None`` for an existing cluster. :class:`SweepError` if the scheduler
    cannot be reached within ``timeout`` seconds."""
    import logging

    dask, distributed = dask_modules()
    logging.getLogger("distributed").setLevel(logging.ERROR)  # the sweep reports what happens to its variants
    if scheduler:
        try:
            return distributed.Client(scheduler, timeout=f"{timeout}s"), None
        except (OSError, TimeoutError, ValueError) as exc:
            raise SweepError(f"cannot reach the Dask scheduler at {scheduler}: {exc}") from None
    # a worker that dies fails its task at once: the sweep tries it again itself (sweep.retries), going
    # on from its checkpoint. (An existing cluster's scheduler first reschedules it as its own
    # allowed-failures says, 3 by default; the sweep's retries come after that.)
    dask.config.set({"distributed.scheduler.allowed-failures": 0})
    try:
        n_workers = n_workers or local_workers()
        cluster = distributed.LocalCluster(n_workers=n_workers, threads_per_worker=1,
                                           processes=True, dashboard_address=None, silence_logs=logging.ERROR,
                                           env=worker_env(local_workers() // n_workers))
        return distributed.Client(cluster), cluster
    except Exception as exc:  # noqa: BLE001 - whatever stops the cluster from starting, said in one line
        raise SweepError(f"cannot start a local Dask cluster: {reason_of(exc)}") from None


def reason_of(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def capacity(client) -> int:
    """How many variants the cluster trains at once now: its worker threads (at least 1)."""
    try:
        return max(1, sum(client.nthreads().values()))
    except Exception:  # noqa: BLE001 - a scheduler that cannot say: one at a time still finishes
        return 1


def run_tasks(client, planned: list[Planned], retries: int, on_record: Callable[[dict], None],
              task_function: Callable[[Task], dict] = train_variant, jobs: list[list[Planned]] | None = None,
              job_function: Callable[[tuple[Task, ...]], list[dict]] | None = None) -> None:
    """Train every planned variant and hand each record to ``on_record`` as it arrives.

    Each Dask task trains one variant (``task_function``), or the variants of one of ``jobs`` (a stack:
    :func:`dltspec.sweeps.stacked.jobs`), given to ``job_function`` (:func:`dltspec.sweeps.stacked.train_stacked`)
    as a tuple of tasks. No more
    tasks are handed to the cluster than it has worker threads (counted again as tasks end, so workers
    that join are used): a task never waits in a worker's queue, where the death of that worker would
    count against it too. A task whose worker died is submitted again up to ``retries`` times (its
    variants go on from their checkpoints), then its variants are recorded ``failed`` with the reason; an
    exception raised by the task itself fails its variants at once (trying again would raise it again)."""
    _dask, distributed = dask_modules()
    waiting = deque((job, 0) for job in (jobs or [[p] for p in planned]))
    futures: dict = {}
    pending = distributed.as_completed()

    def top_up() -> None:
        while waiting and len(futures) < capacity(client):
            job, attempt = waiting.popleft()
            key = f"dltspec-sweep-{job[0].key}-{len(job)}-{attempt}-{time.time_ns()}"
            if len(job) == 1:
                future = client.submit(task_function, job[0].task, key=key, pure=False)
            else:
                future = client.submit(job_function, tuple(p.task for p in job), key=key, pure=False)
            futures[future] = (job, attempt)
            pending.add(future)

    top_up()
    try:
        for future in pending:
            job, attempt = futures.pop(future)
            try:
                result = future.result()
                records = [result] if isinstance(result, dict) else result
            except distributed.KilledWorker as exc:
                if attempt < retries:
                    waiting.appendleft((job, attempt + 1))
                    top_up()
                    continue
                records = [failed_record(p.task, f"its worker died {attempt + 1} time(s): {reason_of(exc)}")
                           for p in job]
            except Exception as exc:  # noqa: BLE001 - whatever a task raised, the sweep goes on
                records = [failed_record(p.task, reason_of(exc)) for p in job]
            for record in records:
                on_record({**record, "attempts": attempt + 1})
            top_up()
    except BaseException:
        client.cancel(list(futures))
        raise


__all__ = ["Planned", "SweepDir", "SweepError", "Task", "connect", "plan", "ranked", "run_tasks", "table", "with_data",
           "train_variant"]
