"""Stage 5, train: the tutorial's patience loop (digest §6).

:class:`Patience` holds the loop's arithmetic and is fed validation results,
so its decisions are testable without training anything; :func:`run_loop`
is the loop itself, driving any ``train_step`` / ``validate`` callables, and
:func:`run_chunks` the same loop training several minibatches per call.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable


@dataclass
class Patience:
    """Early stopping with patience, exactly as the tutorial computes it."""

    n_train_batches: int
    n_epochs: int
    patience: int
    patience_increase: float
    improvement_threshold: float
    validation_frequency: int | None = None
    best_validation_loss: float = math.inf
    best_iter: int = -1

    def __post_init__(self):
        if self.validation_frequency is None:
            self.validation_frequency = min(self.n_train_batches, self.patience // 2)

    @classmethod
    def from_block(cls, block: dict, n_train_batches: int) -> "Patience":
        return cls(n_train_batches, block["n_epochs"], block["patience"], block["patience_increase"],
                   block["improvement_threshold"], block.get("validation_frequency"))

    def validates_at(self, iter_: int) -> bool:
        return (iter_ + 1) % self.validation_frequency == 0

    def observe(self, iter_: int, validation_loss: float) -> bool:
        """Record a validation result; return whether it is a new best."""
        if not validation_loss < self.best_validation_loss:  # as the tutorial: NaN is never a best
            return False
        if validation_loss < self.best_validation_loss * self.improvement_threshold:
            self.patience = max(self.patience, iter_ * self.patience_increase)
        self.best_validation_loss = validation_loss
        self.best_iter = iter_
        return True

    def stops_at(self, iter_: int) -> bool:
        return self.patience <= iter_


@dataclass(frozen=True)
class ValidationPoint:
    """What the loop saw at one validation: passed to the progress callback."""

    epoch: int
    minibatch: int  # 1-based within the epoch
    n_train_batches: int
    iteration: int  # 0-based, as the tutorial's ``iter``
    validation_error: float
    best_validation_error: float
    is_best: bool
    test_error: float | None
    patience: float
    mean_cost: float
    seconds: float


@dataclass
class LoopResult:
    best_validation_loss: float
    best_iter: int
    test_score: float | None
    epochs: int
    iterations: int
    stopped_by: str  # "patience" or "n_epochs"
    seconds: float
    history: list[ValidationPoint] = field(default_factory=list)


def next_event(policy: Patience, start: int, total: int) -> int:
    """The last iteration a chunk starting at ``start`` may train before the host must look:
    the next validation, the iteration where ``patience <= iter`` stops the loop, or the last of
    ``n_epochs``. Patience only changes at validations, so nothing happens in between."""
    next_validation = (start // policy.validation_frequency + 1) * policy.validation_frequency - 1
    stop = max(start, math.ceil(policy.patience))
    return min(next_validation, stop, total - 1)


def run_chunks(policy: Patience, train_chunk: Callable[[int, int], float], validate: Callable[[], float],
               on_best: Callable[[int], float | None],
               on_validation: Callable[[ValidationPoint], None] | None = None,
               clock: Callable[[], float] = time.perf_counter) -> LoopResult:
    """Run the tutorial's loop, training several minibatches per call.

    ``train_chunk(start, n_steps)`` trains on the minibatches of iterations
    ``start .. start + n_steps - 1`` (minibatch ``iter % n_train_batches``) and returns
    the sum of their costs; each chunk ends at the next event (:func:`next_event`),
    where the host validates and decides exactly as the one-minibatch-per-call loop.
    ``validate()`` returns the mean zero-one loss on the validation set;
    ``on_best(iter)`` is called at each new best (keep a copy of the parameters
    there) and returns the test score measured with them.
    """
    start_time = clock()
    n = policy.n_train_batches
    total = policy.n_epochs * n
    iter_, done, test_score = -1, False, None
    history: list[ValidationPoint] = []
    costs, n_costs = 0.0, 0
    while iter_ + 1 < total and not done:
        start = iter_ + 1
        iter_ = next_event(policy, start, total)
        costs += float(train_chunk(start, iter_ - start + 1))
        n_costs += iter_ - start + 1
        if policy.validates_at(iter_):
            this_validation_loss = float(validate())
            is_best = policy.observe(iter_, this_validation_loss)
            if is_best:
                test_score = on_best(iter_)
            point = ValidationPoint(iter_ // n + 1, iter_ % n + 1, n, iter_, this_validation_loss,
                                    policy.best_validation_loss, is_best, test_score if is_best else None,
                                    policy.patience, costs / n_costs, clock() - start_time)
            costs, n_costs = 0.0, 0
            history.append(point)
            if on_validation is not None:
                on_validation(point)
        done = policy.stops_at(iter_)
    epochs = iter_ // n + 1 if iter_ >= 0 else policy.n_epochs
    return LoopResult(policy.best_validation_loss, policy.best_iter, test_score, epochs, iter_ + 1,
                      "patience" if done else "n_epochs", clock() - start_time, history)


def run_loop(policy: Patience, train_step: Callable[[int], float], validate: Callable[[], float],
             on_best: Callable[[int], float | None],
             on_validation: Callable[[ValidationPoint], None] | None = None,
             clock: Callable[[], float] = time.perf_counter) -> LoopResult:
    """Run the tutorial's loop, one ``train_step(minibatch_index)`` call per minibatch
    (returning its cost); otherwise as :func:`run_chunks`, whose decisions it shares."""

    def one_call_per_minibatch(start: int, n_steps: int) -> float:
        return sum(float(train_step(i % policy.n_train_batches)) for i in range(start, start + n_steps))

    return run_chunks(policy, one_call_per_minibatch, validate, on_best, on_validation, clock)
