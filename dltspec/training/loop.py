"""Stage 5, train: the tutorial's patience loop (digest §6).

:class:`Patience` holds the loop's arithmetic and is fed validation results,
so its decisions are testable without training anything; :func:`run_chunks`
is the loop itself, training several minibatches per call of any
``train_chunk`` and validating through any ``validate`` callable, and
:func:`run_loop` the same loop with one call per minibatch.

Everything the loop needs to go on lives in a :class:`Patience` and a
:class:`LoopState`: both are plain data, so a checkpoint is their fields, and a
loop started from them makes exactly the decisions the uninterrupted loop makes.
"""
from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from dltspec.backends.program import ChunkCost

#: how long one training call may run before the host looks again (progress, Ctrl-C). A dispatch has a fixed
#: cost: for LeNet on two CPU cores a one-minibatch dispatch took 0.25 s, a minibatch inside a 100-minibatch
#: dispatch 0.14 s; at 0.25 s every LeNet chunk was one minibatch and `dltspec run` took 25 s an epoch, at
#: 1 s 18 s (bench/RESULTS.md)
CHUNK_SECONDS = 1.0


def seconds_of(text: str | None) -> float | None:
    """``"90s"``, ``"30m"``, ``"2h"`` in seconds (the schema's ``max_time`` pattern); None stays None."""
    if text is None:
        return None
    text = text.strip()
    number = text.rstrip("smhin ")
    unit = text[len(number):].strip()
    return float(number) * {"s": 1, "m": 60, "min": 60, "h": 3600}[unit]


@dataclass
class Patience:
    """Early stopping with patience, exactly as the tutorial computes it, and the policies beside it:
    a target validation error and a time budget (whichever comes first stops the loop).

    ``stopping epochs`` is this loop without patience: ``patience`` is then one more than the
    run's iterations, so that only ``n_epochs`` (or a target, or the time) stops it.
    """

    n_train_batches: int
    n_epochs: int
    patience: float
    patience_increase: float
    improvement_threshold: float
    validation_frequency: int | None = None
    best_validation_loss: float = math.inf
    best_iter: int = -1
    target_error: float | None = None  # stop at a validation error at or below this
    max_seconds: float | None = None  # stop once training has taken this long
    has_patience: bool = True  # False for ``stopping epochs``: patience never stops it (and is not shown)

    def __post_init__(self):
        if self.validation_frequency is None:
            self.validation_frequency = min(self.n_train_batches, self.patience // 2)

    @classmethod
    def from_block(cls, block: dict, n_train_batches: int) -> Patience:
        """The stopping block's policy (:data:`STOPPING`)."""
        return STOPPING[block.get("kind", "patience")](block, n_train_batches)

    def stopped(self, state: LoopState) -> str | None:
        """Which policy has stopped a loop at ``state``, if any: ``patience``, ``n_epochs``, then
        :meth:`reached`'s. The loop asks it after every chunk; a checkpoint's ``done`` is it too."""
        if state.iteration >= 0 and self.stops_at(state.iteration):
            return "patience"
        if state.iteration + 1 >= self.n_epochs * self.n_train_batches:
            return "n_epochs"
        return self.reached(state)

    def reached(self, state: LoopState) -> str | None:
        """The policy besides patience and n_epochs that has stopped the loop here, if any."""
        if self.target_error is not None and self.best_validation_loss <= self.target_error:
            return "target_error"
        if self.max_seconds is not None and state.seconds >= self.max_seconds:
            return "max_time"
        return None

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


def targets(block: dict) -> dict:
    return {"target_error": block.get("target_error"), "max_seconds": seconds_of(block.get("max_time"))}


def patience_policy(block: dict, n_train_batches: int) -> Patience:
    """``stopping patience``: the tutorial's loop."""
    return Patience(n_train_batches, block["n_epochs"], block["patience"], block["patience_increase"],
                    block["improvement_threshold"], block.get("validation_frequency"), **targets(block))


def epochs_policy(block: dict, n_train_batches: int) -> Patience:
    """``stopping epochs``: ``n_epochs`` epochs, validated once an epoch unless told otherwise, no patience."""
    return Patience(n_train_batches, block["n_epochs"], block["n_epochs"] * n_train_batches + 1, 1.0, 1.0,
                    block.get("validation_frequency") or max(n_train_batches, 1), **targets(block),
                    has_patience=False)


#: stopping kind -> ``(block, n_train_batches) -> Patience``
STOPPING = {"patience": patience_policy, "epochs": epochs_policy}


@dataclass
class LoopState:
    """Where the loop is, besides its :class:`Patience`: enough to go on from here."""

    iteration: int = -1  # the last iteration trained (the tutorial's ``iter``)
    test_score: float | None = None  # the test error measured at the best validation
    costs: float = 0.0  # the sum of the training costs since the last validation ...
    n_costs: int = 0  # ... and how many minibatches it adds up
    validations: int = 0  # validation points so far
    seconds: float = 0.0  # training time spent before this process (a resumed run)
    last_finite_cost: float | None = None  # the cost of the last minibatch whose cost was finite


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
    patience: float | None  # None when the policy has no patience (``stopping epochs``)
    mean_cost: float
    seconds: float


@dataclass(frozen=True)
class Divergence:
    """Where the training cost stopped being finite."""

    iteration: int
    epoch: int
    minibatch: int  # 1-based within the epoch
    last_finite_cost: float | None


@dataclass
class LoopResult:
    best_validation_loss: float
    best_iter: int
    test_score: float | None
    epochs: int
    iterations: int
    stopped_by: str  # "patience", "n_epochs", "target_error", "max_time", "interrupted" or "diverged"
    seconds: float
    history: list[ValidationPoint] = field(default_factory=list)
    divergence: Divergence | None = None


def next_event(policy: Patience, start: int, total: int) -> int:
    """The last iteration a chunk starting at ``start`` may train before the host must look:
    the next validation, the iteration where ``patience <= iter`` stops the loop, or the last of
    ``n_epochs``. Patience only changes at validations, so nothing happens in between."""
    next_validation = (start // policy.validation_frequency + 1) * policy.validation_frequency - 1
    stop = max(start, math.ceil(policy.patience))
    return min(next_validation, stop, total - 1)


def steps_within(seconds: float, n_steps: int, elapsed: float) -> int:
    """How many minibatches fit in ``seconds`` at the speed just measured (``n_steps`` in ``elapsed``)."""
    return max(1, int(n_steps * seconds / elapsed)) if elapsed > 0 else n_steps * 2


class Loop:
    """The tutorial's patience loop as a machine that is stepped from outside, one chunk of minibatches at
    a time: :func:`run_chunks` steps one; :func:`dltspec.training.stack.run_stack` steps one per variant of a
    stack, all trained by the same dispatches. The arithmetic and the decisions are :func:`run_chunks`'s.

    Each round: :attr:`start` is the next iteration to train, :meth:`chunk_end` the last one the next chunk
    may train; :meth:`trained` takes what the chunk reported (and says whether a validation is due);
    :meth:`validated` takes the validation loss; :meth:`settle` asks the stopping policy.
    """

    def __init__(self, policy: Patience, on_best: Callable[[int], float | None],
                 on_validation: Callable[[ValidationPoint], None] | None = None,
                 clock: Callable[[], float] = time.perf_counter, state: LoopState | None = None,
                 on_chunk: Callable[[LoopState], None] | None = None):
        self.policy, self.on_best, self.on_validation, self.on_chunk, self.clock = (policy, on_best, on_validation,
                                                                                     on_chunk, clock)
        self.state = state if state is not None else LoopState()
        self.start_time = clock() - self.state.seconds
        self.total = policy.n_epochs * policy.n_train_batches
        self.history: list[ValidationPoint] = []
        self.divergence: Divergence | None = None
        self.stopped_by = policy.stopped(self.state)
        self.cap = 1  # the first chunk is one minibatch: ``on_chunk`` then tells that training has started

    @property
    def start(self) -> int:
        return self.state.iteration + 1

    def chunk_end(self) -> int:
        """The last iteration the next chunk may train: the next event, or sooner (about ``chunk_seconds``)."""
        return min(next_event(self.policy, self.start, self.total), self.start + self.cap - 1)

    def trained(self, chunk: ChunkCost, elapsed: float, chunk_seconds: float = CHUNK_SECONDS) -> bool:
        """Take the report of a chunk of ``chunk.n_steps`` minibatches from :attr:`start` that took ``elapsed``
        seconds; return whether the loop validates now (False once it diverged)."""
        state, n = self.state, self.policy.n_train_batches
        start, end = self.start, self.start + chunk.n_steps - 1
        self.cap = steps_within(chunk_seconds, chunk.n_steps, elapsed)
        if chunk.first_nonfinite is not None:
            at = start + chunk.first_nonfinite
            last = chunk.last_finite if chunk.last_finite is not None else state.last_finite_cost
            self.divergence, self.stopped_by = Divergence(at, at // n + 1, at % n + 1, last), "diverged"
            state.iteration = at - 1  # what trained with finite costs (not a state to go on from)
            return False
        state.iteration, state.last_finite_cost = end, chunk.last_finite
        state.costs, state.n_costs = state.costs + chunk.total, state.n_costs + chunk.n_steps
        state.seconds = self.clock() - self.start_time
        if self.on_chunk is not None:
            self.on_chunk(state)
        return self.policy.validates_at(end)

    def validated(self, this_validation_loss: float) -> ValidationPoint:
        """Take the validation loss at the iteration just trained: the patience arithmetic, ``on_best``
        (and its test score) at a new best, then ``on_validation``."""
        policy, state, n, end = self.policy, self.state, self.policy.n_train_batches, self.state.iteration
        is_best = policy.observe(end, this_validation_loss)
        if is_best:
            state.test_score = self.on_best(end)
        state.seconds = self.clock() - self.start_time
        point = ValidationPoint(end // n + 1, end % n + 1, n, end, this_validation_loss,
                                policy.best_validation_loss, is_best, state.test_score if is_best else None,
                                policy.patience if policy.has_patience else None, state.costs / state.n_costs,
                                state.seconds)
        state.costs, state.n_costs = 0.0, 0
        state.validations += 1
        self.history.append(point)
        if self.on_validation is not None:
            self.on_validation(point)
        return point

    def settle(self) -> str | None:
        """After a round: whether the stopping policy stops the loop here (kept in :attr:`stopped_by`)."""
        if self.stopped_by is None:
            self.stopped_by = self.policy.stopped(self.state)
        return self.stopped_by

    def result(self) -> LoopResult:
        policy, iter_ = self.policy, self.state.iteration
        epochs = iter_ // policy.n_train_batches + 1 if iter_ >= 0 else (
            policy.n_epochs if self.stopped_by == "n_epochs" else 0)
        return LoopResult(policy.best_validation_loss, policy.best_iter, self.state.test_score, epochs, iter_ + 1,
                          self.stopped_by, self.clock() - self.start_time, self.history, self.divergence)


def run_chunks(policy: Patience, train_chunk: Callable[[int, int], ChunkCost], validate: Callable[[], float],
               on_best: Callable[[int], float | None],
               on_validation: Callable[[ValidationPoint], None] | None = None,
               clock: Callable[[], float] = time.perf_counter, *, state: LoopState | None = None,
               on_chunk: Callable[[LoopState], None] | None = None,
               should_stop: Callable[[], bool] | None = None,
               chunk_seconds: float = CHUNK_SECONDS) -> LoopResult:
    """Run the tutorial's loop, training several minibatches per call.

    ``train_chunk(start, n_steps)`` trains on the minibatches of iterations
    ``start .. start + n_steps - 1`` (minibatch ``iter % n_train_batches``) and returns a
    :class:`ChunkCost`. A chunk ends at the next event (:func:`next_event`), where the host
    validates and decides exactly as the one-minibatch-per-call loop, or sooner: the first chunk
    is one minibatch (``on_chunk`` then tells that training has started), and later ones are
    sized to take about ``chunk_seconds``, so that progress and Ctrl-C are seen promptly.
    Chunk boundaries never change what is computed.

    ``validate()`` returns the mean zero-one loss on the validation set; ``on_best(iter)`` is
    called at each new best (keep a copy of the parameters there) and returns the test score
    measured with them. ``on_chunk(state)`` is called after every chunk, ``on_validation(point)``
    after every validation (``state`` is up to date in both: checkpoint there).

    ``state`` (with ``policy``) is where to start: a fresh loop by default, or the state a
    checkpoint saved. The loop stops early, between two chunks, when ``should_stop()`` says so
    ("interrupted"), or when a minibatch's cost is not finite ("diverged", located in
    ``LoopResult.divergence``). The loop is a :class:`Loop` stepped until it stops.
    """
    loop = Loop(policy, on_best, on_validation, clock, state, on_chunk)
    while loop.stopped_by is None:
        if should_stop is not None and should_stop():
            loop.stopped_by = "interrupted"
            break
        start, end = loop.start, loop.chunk_end()
        began = clock()
        chunk = train_chunk(start, end - start + 1)
        if loop.trained(chunk, clock() - began, chunk_seconds):
            loop.validated(float(validate()))
        loop.settle()
    return loop.result()


def run_loop(policy: Patience, train_step: Callable[[int], float], validate: Callable[[], float],
             on_best: Callable[[int], float | None],
             on_validation: Callable[[ValidationPoint], None] | None = None,
             clock: Callable[[], float] = time.perf_counter, **options) -> LoopResult:
    """Run the tutorial's loop, one ``train_step(minibatch_index)`` call per minibatch
    (returning its cost); otherwise as :func:`run_chunks`, whose decisions it shares."""

    def one_call_per_minibatch(start: int, n_steps: int) -> ChunkCost:
        n = policy.n_train_batches
        return ChunkCost.of_costs([float(train_step(i % n)) for i in range(start, start + n_steps)])

    return run_chunks(policy, one_call_per_minibatch, validate, on_best, on_validation, clock, **options)
