"""Sweeps, stacked: the variants of a sweep that compile to one graph train together, as one program on one device
(:mod:`dltspec.backends.stack`), each with its own loop, run directory and results record
(:func:`dltspec.training.stack.run_stack`).

The client groups the variants by :func:`dltspec.sweeps.variants.stack_key` (what may differ inside a stack
masked: the optimizer's numbers but its batch size, the penalty weights, the initialisation seeds, the
stopping policy and the run settings), and each group is one Dask task (:func:`train_stacked`). The worker
checks that the group's graphs really are one computation (a value that is a constant of the graph, such as
a momentum of 0 or not, splits it) and trains each stack it finds; a variant that stacks with nothing trains
alone, as :func:`dltspec.sweeps.tasks.train_variant` trains it.
"""
from __future__ import annotations

import os
import socket
import time
from collections.abc import Sequence
from pathlib import Path

from dltspec import pipeline as api
from dltspec.diagnostics import SpecError
from dltspec.lang.spec import Spec


def jobs(planned: Sequence, workers: int, stack: bool) -> list[list]:
    """The Dask tasks of ``planned`` (:class:`dltspec.sweeps.tasks.Planned`), each a list of variants: one
    per variant unless ``stack``, else one per group of equal :func:`stack_key` (a variant with none: alone).
    On the CPU a group is split in halves while there are fewer tasks than ``workers`` and each half keeps
    two variants or more, so that every core trains a stack; a GPU's stack stays whole."""
    if not stack:
        return [[p] for p in planned]
    groups: dict[str, list] = {}
    out: list[list] = []
    for p in planned:
        key = p.task.stack_key
        if key is None or p.task.backend != "jax":
            out.append([p])
        elif key in groups:
            groups[key].append(p)
        else:
            groups[key] = [p]
            out.append(groups[key])
    while len(out) < workers:
        largest = max(out, key=len)
        if len(largest) < 4 or (largest[0].task.device or "cpu") != "cpu":
            break
        half = (len(largest) + 1) // 2
        out[out.index(largest)] = largest[:half]
        out.append(largest[half:])
    return sorted(out, key=lambda job: job[0].task.index)


def train_stacked(job: tuple) -> list[dict]:
    """Train the variants of ``job`` (:class:`dltspec.sweeps.tasks.Task`, one data set and, most likely, one
    graph) in stacks, each in its own run directory, going on from its checkpoint where an earlier try left
    one; return their records, each saying the size of the stack it trained in (``stack``). Runs on a
    Dask worker; what a variant's problem is (its run directory cannot be written) is its ``failed`` record."""
    from dltspec.sweeps import tasks
    from dltspec.training.rundir import RunDir

    tasks.worker_environment()
    started = time.perf_counter()
    where = {"worker": socket.gethostname(), "pid": os.getpid()}
    records: dict[int, dict] = {}
    todo = []
    for task in job:
        summary = RunDir(Path(task.run_dir)).summary()
        if summary.get("status") in tasks.ENDED:  # it ended, but the client stopped before it heard
            records[task.index] = {**tasks.summary_record(task, summary), "wall_seconds": 0.0, **where}
        else:
            todo.append(task)
    if todo:
        try:
            specs = [api.read(text=t.spec_text, file=f"{t.name}.dlt", base_dir=t.base_dir) for t in todo]
            splits = api.load_data(specs[0])
            first = todo[0]
            grouped = api.compile_stacks(specs, splits, floatX=first.floatX, device=first.device, budget=first.budget)
        except SpecError as exc:
            reason = "; ".join(d.message for d in exc.diagnostics)
            return [tasks.failed_record(t, reason, **where) for t in todo] + list(records.values())
        for indices, trainings in grouped:
            if trainings is None:
                records[todo[indices[0]].index] = tasks.train_variant(todo[indices[0]], splits)  # the data: once
            else:
                for record in stack_records([todo[i] for i in indices], [specs[i] for i in indices], trainings,
                                            splits, started, where):
                    records[record["index"]] = record
    return [records[t.index] for t in job]


def stack_records(todo: list, specs: list[Spec], trainings: list, splits, started: float, where: dict) -> list[dict]:
    """Begin (or resume) each variant's run, train the stack of those that began, return every record."""
    from dltspec.sweeps import tasks
    from dltspec.training.record import begin
    from dltspec.training.rundir import RunError
    from dltspec.training.stack import run_stack

    records, begun = [], []
    for task, spec, training in zip(todo, specs, trainings):
        try:
            begun.append((task, begin(spec, lambda training=training: training, task.backend, task.floatX, task.device,
                                      resume_from=Path(task.run_dir), source=splits.source, restart=True,
                                      hparams=dict(task.hparams))))
        except RunError as exc:
            records.append(tasks.failed_record(task, str(exc), **where))
    if begun:
        run_stack([b.training for _t, b in begun], trainings[0].program.stack, [b.recorder for _t, b in begun])
    wall = round(time.perf_counter() - started, 3)
    for task, b in begun:
        records.append({**tasks.summary_record(task, b.recorder.summary), "wall_seconds": wall, "stack": len(todo),
                        **where})
    return records


__all__ = ["jobs", "train_stacked"]
