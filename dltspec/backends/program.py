"""What every backend builds: a :class:`Program`, and the :class:`ChunkCost` its training calls report.

Nothing here imports numpy, PyTensor or jax: the training loop (:mod:`dltspec.training`) reads only
this protocol, whichever backend built the program.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class ChunkCost:
    """What one training call reports: the sum of its minibatches' costs, and where a cost first
    stopped being finite (``first_nonfinite``: its offset in the call) with the last finite cost before it."""

    total: float
    n_steps: int
    first_nonfinite: int | None = None
    last_finite: float | None = None

    @classmethod
    def of_costs(cls, costs: Sequence[float]) -> ChunkCost:
        """The report of a call that saw each minibatch's cost."""
        bad = next((i for i, c in enumerate(costs) if not math.isfinite(c)), None)
        finite = costs[:bad] if bad is not None else costs
        return cls(float(sum(costs)), len(costs), bad, float(finite[-1]) if len(finite) else None)

    @classmethod
    def joined(cls, parts: Sequence[ChunkCost]) -> ChunkCost:
        """One report for several calls that trained consecutive minibatches."""
        offset, last = 0, None
        for part in parts:
            if part.first_nonfinite is not None:
                return cls(sum(p.total for p in parts), sum(p.n_steps for p in parts),
                           offset + part.first_nonfinite, part.last_finite if part.last_finite is not None else last)
            offset, last = offset + part.n_steps, part.last_finite if part.last_finite is not None else last
        return cls(sum(p.total for p in parts), offset, None, last)



class Program(Protocol):
    """A compiled spec: its training step, its evaluation, its parameters and its optimizer state.

    Implemented by :class:`dltspec.backends.pytensor_backend.Program` and
    :class:`dltspec.backends.jax_backend.JaxProgram`.
    """

    n_batches: dict[str, int]
    floatX: str

    def train_chunk(self, start: int, n_steps: int) -> ChunkCost:
        """Train the minibatches of iterations ``start .. start + n_steps - 1`` (``iter % n_train_batches``)."""

    def error(self, split: str) -> float:
        """Mean zero-one loss over the split's full minibatches."""

    def values(self) -> dict:
        """A host copy of every parameter, by name."""

    def set_values(self, values: dict) -> None:
        """Put parameters (by name) in place."""

    def snapshot(self) -> object:
        """The current parameters, cheaply (kept as the best ones)."""

    def arrays(self, snapshot: object) -> dict:
        """Host copies of a :meth:`snapshot`'s parameters, by name."""

    def state_snapshot(self) -> object:
        """The optimizer's state now, cheaply (for a checkpoint; empty for a rule without state)."""

    def state_arrays(self, snapshot: object) -> dict:
        """Host copies of a :meth:`state_snapshot`, by name."""

    def state_values(self) -> dict:
        """Host copies of the optimizer's state now, by name."""

    def set_state(self, values: dict) -> None:
        """Put the optimizer's state variables named in ``values`` in place (all of them, or some: the others keep
        their values)."""
