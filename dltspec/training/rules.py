"""The training loop's check of the data: the run must reach a validation point."""
from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from dltspec.diagnostics import Diagnostic, error, warning
from dltspec.lang.spec import Spec
from dltspec.training.loop import Patience

if TYPE_CHECKING:
    from dltspec.data.loaders import Splits


def validates_at_least_once(spec: Spec, splits: Splits) -> Iterator[Diagnostic]:
    """A run that never reaches a validation point has no best parameters to save."""
    stopping = spec.block("stopping")
    n_train_batches = splits.size("train") // spec.block("optimizer")["batch_size"]
    frequency = Patience.from_block(stopping, n_train_batches).validation_frequency  # as the loop computes it
    iterations = stopping["n_epochs"] * n_train_batches
    if n_train_batches and frequency > iterations:
        key = "validation_frequency" if "validation_frequency" in stopping else "n_epochs"
        yield error("DLT301", f"the run never validates: validation every {frequency} minibatches but only "
                    f"{iterations} minibatches in {stopping['n_epochs']} epoch(s) of {n_train_batches}",
                    spec.positions.value(("stopping", key)))


def schedule_fits_the_data(spec: Spec, splits: Splits) -> Iterator[Diagnostic]:
    """A schedule counted in iterations that acts after the run's last minibatch, and an on_plateau
    patience of at least the validation points the run has, never act (DLT312)."""
    from dltspec.lang.rules import schedule_fits_the_run

    schedule, stopping = spec.data.get("schedule"), spec.block("stopping")
    n_train_batches = splits.size("train") // spec.block("optimizer")["batch_size"]
    if schedule is None or not n_train_batches:
        return
    yield from schedule_fits_the_run(spec, stopping["n_epochs"] * n_train_batches, "iteration")
    if schedule["kind"] == "on_plateau":
        frequency = Patience.from_block(stopping, n_train_batches).validation_frequency
        points = stopping["n_epochs"] * n_train_batches // frequency
        if schedule["patience"] >= points:
            yield warning("DLT312", f"on_plateau reduces the rate after more than {schedule['patience']} validation "
                          f"points without improvement, but the run has at most {points}: it never does",
                          spec.positions.value(("schedule", "patience")))


DATA_RULES = (validates_at_least_once, schedule_fits_the_data)
