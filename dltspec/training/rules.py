"""The training loop's check of the data: the run must reach a validation point."""
from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from dltspec.diagnostics import Diagnostic, error
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


DATA_RULES = (validates_at_least_once,)
