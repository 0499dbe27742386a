"""Stage 5, train, for a stack: the patience loops of the variants of one :class:`dltspec.backends.stack.StackProgram`,
stepped together, each its own.

Every variant has its own :class:`~dltspec.training.session.Training` (its program is its
:class:`~dltspec.backends.stack.Member`), hence its own patience, best parameters, test score, stop,
checkpoint, run directory and observer. One round trains every variant whose loop has not stopped by the
same number of minibatches in one dispatch: as many as the variant that must look soonest (its next
validation, its patience, its last epoch, about a second) may train, so that no loop trains past its event;
the variants that stopped are masked, and once a quarter of them have stopped the stack shrinks to those
that go on. Chunk boundaries never change what a loop computes, so each variant
makes the decisions it makes alone. The validation and test errors of the variants that validate are
computed for the whole stack in one dispatch.

A variant's ``seconds`` are the stack's: the wall time since the stack started (or since its checkpoint's).
"""
from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from dltspec.training.loop import CHUNK_SECONDS
from dltspec.training.session import Observer, Result, Training

#: the share of a stack's variants that must have stopped before it shrinks: a smaller stack trains faster than
#: a masked one (bench/stack_masking.py: 1.6x-1.8x, 4 of 8 logistic regressions training), but its chunk
#: function is compiled for the new size first (about a second, once: the XLA cache keeps it)
SHRINK_AT = 0.25


def run_stack(trainings: Sequence[Training], stack, observers: Sequence[Observer | None],
              should_stop: Callable[[], bool] | None = None, clock: Callable[[], float] = time.perf_counter,
              chunk_seconds: float = CHUNK_SECONDS, shrink: bool = True) -> list[Result]:
    """Train the variants of ``stack`` that ``trainings`` hold (each one's program is its
    :class:`~dltspec.backends.stack.Member`; the stack's other variants are left as they are) until each loop
    stops; ``observers[k]`` is told what it would be told were ``trainings[k]`` trained alone.
    ``should_stop()`` is asked between rounds: every loop still going then ends ``interrupted``. ``shrink``:
    once at least :data:`SHRINK_AT` of the stack's variants no longer train (their loops stopped, or they
    train elsewhere), the stack keeps only those that do (:meth:`~dltspec.backends.stack.StackProgram.shrink`);
    else they stay, masked."""
    observers = [o or Observer() for o in observers]
    for training, observer in zip(trainings, observers):
        if not training.pretrained:
            raise ValueError("a stack trains supervised graphs only: pre-training runs alone")
        observer.started(training)
    loops = [t.loop(o) for t, o in zip(trainings, observers)]
    while True:
        going = [k for k, loop in enumerate(loops) if loop.stopped_by is None]
        if not going:
            break
        if shrink and stack.size - len(going) >= max(1, stack.size * SHRINK_AT):
            stack.shrink([trainings[k].program.index for k in going])
        member = [t.program.index for t in trainings]  # each loop's variant in the stack (None: it left)
        if should_stop is not None and should_stop():
            for k in going:
                loops[k].stopped_by = "interrupted"
            break
        length = min(loops[k].chunk_end() - loops[k].start + 1 for k in going)
        starts, steps = [0] * stack.size, [0] * stack.size
        for k in going:
            starts[member[k]], steps[member[k]] = loops[k].start, length
        began = clock()
        costs = stack.train_chunk(starts, steps)
        elapsed = clock() - began
        due = [k for k in going if loops[k].trained(costs[member[k]], elapsed, chunk_seconds)]
        for k in due:
            loops[k].validated(float(trainings[k].program.error("valid")))
        for k in going:
            loops[k].settle()
    return [t.ended(loop.result(), o) for t, loop, o in zip(trainings, loops, observers)]
