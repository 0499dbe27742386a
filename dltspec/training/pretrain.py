"""The pre-training stage of a run: each pre-trained layer in turn, a fixed number of epochs, before the
patience loop (the tutorials' SdA and DBN ``pretraining_functions`` loop).

A phase is compiled by the run's backend as a program of its own
(:func:`dltspec.model.pretrain.phase_spec`), started from the values the network has now, trained
``epochs`` passes over the training split in chunks (many minibatches per dispatch under JAX), and its
layer's ``W`` and ``b`` handed back to the network. Each epoch's mean cost is told to the observer
(:meth:`dltspec.training.session.Observer.pretrain_epoch`), which records it and checkpoints; an
interruption stops between two chunks with the phase's own state (its extra parameters, its step
count, its persistent chains) in the checkpoint, so a resumed run trains exactly what the
uninterrupted one did.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from dltspec.training.loop import CHUNK_SECONDS, steps_within


@dataclass
class PretrainState:
    """Where the pre-training is: enough to go on from here (plain data, in the checkpoint)."""

    phase: int = 0  # the phase in progress; the number of phases once pre-training is over
    step: int = 0  # minibatches the phase has trained
    costs: float = 0.0  # the sum of this epoch's costs so far
    records: int = 0  # epochs recorded so far, all phases together (lines of pretrain.jsonl)
    seconds: float = 0.0  # time spent pre-training before this process


@dataclass(frozen=True)
class PretrainEpoch:
    """One pre-training epoch, as recorded (a line of ``pretrain.jsonl``) and shown."""

    phase: int  # 0-based
    n_phases: int
    layer: str  # the layer's name, e.g. hidden0
    kind: str  # denoising or rbm
    epoch: int  # 1-based within the phase
    n_epochs: int
    cost: float  # the epoch's mean monitored cost
    seconds: float  # pre-training time so far

    def record(self) -> dict:
        return {"phase": self.phase, "layer": self.layer, "kind": self.kind, "epoch": self.epoch,
                "cost": self.cost, "seconds": round(self.seconds, 3)}


def pretrain(training, observer, should_stop: Callable[[], bool] | None = None,
             clock: Callable[[], float] = time.perf_counter) -> bool:
    """Run what is left of ``training``'s pre-training; ``False`` if ``should_stop()`` stopped it (between
    two chunks, its state kept in ``training`` for a checkpoint), ``True`` once every phase is done."""
    from dltspec.model.pretrain import pretrained_layers
    from dltspec.model.shapes import network

    state, block = training.pretrain, training.spec.data["pretrain"]
    layers = network(training.spec.data).layers
    names = [layers[i].name for i in pretrained_layers(layers)]
    start_time = clock() - state.seconds
    while state.phase < len(names):
        program = training.phase_program()
        n = program.n_batches["train"]
        total, cap = block["epochs"] * n, 1
        while state.step < total:
            if should_stop is not None and should_stop():
                state.seconds = clock() - start_time
                return False
            steps = min(cap, n - state.step % n)  # a chunk never crosses an epoch's end
            began = clock()
            chunk = program.train_chunk(state.step, steps)
            cap = steps_within(CHUNK_SECONDS, steps, clock() - began)
            state.step, state.costs = state.step + steps, state.costs + chunk.total
            state.seconds = clock() - start_time
            if state.step % n == 0:
                epoch = PretrainEpoch(state.phase, len(names), names[state.phase], block["kind"], state.step // n,
                                      block["epochs"], state.costs / n, state.seconds)
                state.costs, state.records = 0.0, state.records + 1
                observer.pretrain_epoch(epoch, training)
        training.end_phase()
        if state.phase == len(names):
            observer.pretrained(training)
    return True
