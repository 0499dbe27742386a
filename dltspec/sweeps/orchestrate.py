"""A whole sweep, for the API and the CLI alike: check the variants against their data, plan their tasks,
hold the sweep directory's lock, train what has not ended on a Dask cluster, record and rank the results.
The steps that touch Dask and the data are :mod:`dltspec.sweeps.tasks`'s, called through that module.

:func:`run_sweep` prints nothing: it tells a :class:`SweepObserver` what happens and returns a
:class:`SweepResult`, or raises a :class:`~dltspec.sweeps.tasks.SweepError` (the sweep could not run: no
Dask, no cluster, a directory that cannot be written; ``usage`` says whether the user asked for
something impossible), a :class:`SweepStopped` (it ran and stopped: the cluster or the disk failed) or
:class:`SweepInterrupted` (Ctrl-C or SIGTERM, with the tables written as far as it got).
"""
from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from pathlib import Path

from dltspec import interrupts
from dltspec.diagnostics import DltspecError, SpecError
from dltspec.lang.spec import Spec
from dltspec.sweeps import stacked, tasks
from dltspec.sweeps.sweepdir import SweepDir, SweepError, ranked
from dltspec.sweeps.tasks import DEFAULT_ROOT, ENDED, Planned, reason_of
from dltspec.sweeps.variants import checked_variants, swept_keys


class SweepStopped(DltspecError):
    """The sweep ran and stopped before every variant ended (a full disk, a scheduler gone); what ended is kept."""


class SweepInterrupted(DltspecError):
    """Ctrl-C or SIGTERM: the cluster is closed, the tables are written as far as the sweep got."""


class SweepObserver:
    """What a sweep tells as it goes; subclass and override what you need."""

    def planned(self, spec: Spec, planned: list[Planned], done: int, out: Path) -> None:
        """The variants are planned; ``done`` of them ended in an earlier run of the same sweep."""

    def connected(self, n_workers: int, scheduler: str | None, n_todo: int, out: Path) -> None:
        """The cluster is up: ``n_todo`` variants go to its ``n_workers`` workers."""

    def ended(self, record: dict, planned: Planned, done: int, total: int) -> None:
        """A variant ended (finished, diverged or failed): its results record."""


class SweepObservers(SweepObserver):
    """Several sweep observers, told in order."""

    def __init__(self, *observers: SweepObserver | None):
        self.observers = [o for o in observers if o is not None]

    def planned(self, spec, planned, done, out):
        for o in self.observers:
            o.planned(spec, planned, done, out)

    def connected(self, n_workers, scheduler, n_todo, out):
        for o in self.observers:
            o.connected(n_workers, scheduler, n_todo, out)

    def ended(self, record, planned, done, total):
        for o in self.observers:
            o.ended(record, planned, done, total)


class SweepBar(SweepObserver):
    """The Python API's sweep progress: a bar of the variants ended (tqdm's auto mode: a widget in Jupyter)."""

    def __init__(self):
        self.bar = None

    def planned(self, spec, planned, done, out):
        from tqdm.auto import tqdm

        self.bar = tqdm(total=len(planned), initial=done, unit="variant", desc=f"sweep {spec.name}")

    def ended(self, record, planned, done, total):
        self.bar.set_postfix_str(f"variant {planned.variant.index} {record['status']}", refresh=False)
        self.bar.update(1)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


@dataclass
class SweepResult:
    """What a sweep produced: its ranked rows (as ``results.csv``), the swept keys, where it is."""

    out: Path
    rows: list[dict]
    keys: list[str]
    planned: list[Planned] = field(default_factory=list)

    @property
    def failed(self) -> list[dict]:
        return [row for row in self.rows if row["status"] == "failed"]


def planned_variants(spec: Spec, out: Path, backend: str, floatX: str, device: str | None,
                     budget: int | None, ready: list | None = None) -> list[Planned]:
    """Every variant of the spec's sweep (``ready``: as :func:`~dltspec.sweeps.variants.checked_variants`
    gave them, if the caller checked them already), checked against its data and planned in ``out``;
    :class:`SpecError` with every problem if any variant cannot train."""
    if ready is None:
        ready, found = checked_variants(spec, [])
        if any(d.is_error for d in found):
            raise SpecError(found)
    passed, problems = tasks.with_data(spec, ready)
    problems += tasks.tensorboard_problems(passed)
    if problems:
        raise SpecError(problems)
    return tasks.plan(spec, passed, out, backend, floatX, device, budget)


def run_sweep(spec: Spec, *, out: Path | None = None, backend: str = "jax", floatX: str = "float32",
              device: str | None = None, budget: int | None = None, scheduler: str | None = None,
              workers: int | None = None, connect_timeout: float = 30,
              observer: SweepObserver | None = None, ready: list | None = None, stack: bool = True) -> SweepResult:
    """Train every variant of ``spec``'s sweep that has not ended in ``out`` (default ``sweeps/<name>``)
    on a Dask cluster (``scheduler``'s, else a local one of ``workers``: by default one per core, or one per
    task where there are fewer), and rank them (``ready``: the variants, if the caller checked them
    already). ``stack``: variants of one graph train together, one stack per task (:mod:`dltspec.sweeps.stacked`)."""
    observer = observer or SweepObserver()
    if "sweep" not in spec.data:
        raise SweepError(f"{spec.name} has no sweep block; add one, e.g. "
                         "`sweep grid { optimizer.learning_rate = [0.01, 0.1] }`")
    tasks.dask_modules()
    out = Path(out) if out is not None else DEFAULT_ROOT / spec.name
    planned = planned_variants(spec, out, backend, floatX, device, budget, ready)
    try:
        sweep_dir = SweepDir.create(out)
        lock = sweep_dir.lock()
    except OSError as exc:
        raise SweepError(exc.strerror or str(exc)) from None
    with lock:  # released however the sweep ends, a plan that cannot be written included
        try:
            sweep_dir.write_plan(spec, planned)
        except OSError as exc:
            raise SweepError(f"cannot write the plan in {out}: {exc.strerror or exc}") from None
        return trained(sweep_dir, spec, planned, scheduler, workers, connect_timeout, observer, stack)


def trained(sweep_dir: SweepDir, spec: Spec, planned: list[Planned], scheduler: str | None, workers: int | None,
            connect_timeout: float, observer: SweepObserver, stack: bool = True) -> SweepResult:
    """Holding the sweep directory's lock: train what has not ended, record it, write the ranked tables."""
    out, keys = sweep_dir.path, swept_keys(spec.data["sweep"])
    records = sweep_dir.records()
    todo = [p for p in planned if records.get(p.key, {}).get("status") not in ENDED]
    done = len(planned) - len(todo)
    observer.planned(spec, planned, done, out)
    by_key = {p.key: p for p in planned}
    tables_written = time.monotonic()

    def on_record(record: dict) -> None:
        nonlocal done, tables_written
        done += 1
        records[record["key"]] = record
        sweep_dir.append(record)  # durable at once; the ranked tables at most once a second, and at the end
        if time.monotonic() - tables_written >= 1.0:
            sweep_dir.write_tables(ranked(planned, records), keys)
            tables_written = time.monotonic()
        observer.ended(record, by_key[record["key"]], done, len(planned))

    if todo:
        client = cluster = None
        try:
            if scheduler is None and workers is None:  # no more local workers than tasks
                workers = min(tasks.local_workers(), len(stacked.jobs(todo, tasks.local_workers(), stack)))
            with interrupts.deferred() if scheduler is None else contextlib.nullcontext():
                client, cluster = tasks.connect(scheduler, workers, connect_timeout)  # a local cluster
            observer.connected(len(client.scheduler_info().get("workers", {})), scheduler, len(todo), out)
            units = stacked.jobs(todo, tasks.capacity(client), stack)
            tasks.run_tasks(client, todo, spec.data["sweep"]["retries"], on_record, jobs=units,  # starts whole, or not
                            job_function=stacked.train_stacked)
        except SweepError:
            raise
        except KeyboardInterrupt:
            with contextlib.suppress(OSError):  # the tables as far as it got (results.jsonl has every record)
                sweep_dir.write_tables(ranked(planned, records), keys)
            raise SweepInterrupted(f"interrupted with {done} of {len(planned)} variants ended (results in {out}); "
                                   "run the same command again to go on") from None
        except Exception as exc:  # noqa: BLE001 - a full disk, a scheduler gone: one line, what ended is kept
            raise SweepStopped(f"stopped with {done} of {len(planned)} variants ended (results in {out}): "
                               f"{getattr(exc, 'strerror', None) or reason_of(exc)}") from None
        finally:
            if client is not None:
                client.close()
            if cluster is not None:
                cluster.close()
    rows = ranked(planned, records)
    try:
        sweep_dir.write_tables(rows, keys)
    except OSError as exc:
        raise SweepStopped(f"cannot write the results tables in {out}: {exc.strerror or exc}") from None
    return SweepResult(out, rows, keys, planned)
