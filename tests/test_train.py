"""dltspec's patience loop makes the same decisions as the tutorial's loop, transcribed literally."""
from __future__ import annotations

import math
import random

import pytest

from dltspec.train import Patience, run_chunks, run_loop


def tutorial_loop(n_train_batches, n_epochs, patience, patience_increase, improvement_threshold, losses):
    """The loop of the tutorial's 'Getting Started' page (digest §6), transcribed literally.

    ``losses`` yields the validation loss of each successive validation.
    Returns the trace of decisions the loop took.
    """
    trace = {"validated_at": [], "patience_after": [], "best_at": [], "tested_at": []}
    validation_frequency = min(n_train_batches, patience // 2)
    best_validation_loss = math.inf
    best_iter = -1
    test_score = None
    epoch = 0
    done_looping = False
    while (epoch < n_epochs) and (not done_looping):
        epoch = epoch + 1
        for minibatch_index in range(n_train_batches):
            iter = (epoch - 1) * n_train_batches + minibatch_index
            if (iter + 1) % validation_frequency == 0:
                this_validation_loss = next(losses)
                trace["validated_at"].append(iter)
                if this_validation_loss < best_validation_loss:
                    if this_validation_loss < best_validation_loss * improvement_threshold:
                        patience = max(patience, iter * patience_increase)
                    best_validation_loss = this_validation_loss
                    best_iter = iter
                    test_score = iter  # stands for "measured with the parameters of iter"
                    trace["tested_at"].append(iter)
                trace["patience_after"].append(patience)
            if patience <= iter:
                done_looping = True
                break
    trace.update(best_iter=best_iter, best=best_validation_loss, test=test_score, epochs=epoch, stop_iter=iter)
    return trace


def traced(run) -> dict:
    """What a loop decided: ``run(on_best, on_validation)`` runs it and returns its ``LoopResult``."""
    trace = {"validated_at": [], "patience_after": [], "best_at": [], "tested_at": []}

    def on_validation(point):
        trace["validated_at"].append(point.iteration)
        trace["patience_after"].append(point.patience)

    def on_best(iter_):
        trace["tested_at"].append(iter_)
        return iter_

    result = run(on_best, on_validation)
    trace.update(best_iter=result.best_iter, best=result.best_validation_loss, test=result.test_score,
                 epochs=result.epochs, stop_iter=result.iterations - 1, result=result)
    return trace


def dltspec_loop(n_train_batches, n_epochs, patience, patience_increase, improvement_threshold, losses):
    """:func:`run_loop`, one call per minibatch, each with the right minibatch index."""
    policy = Patience(n_train_batches, n_epochs, patience, patience_increase, improvement_threshold)
    steps = []
    trace = traced(lambda on_best, on_validation: run_loop(
        policy, lambda i: steps.append(i) or 0.0, lambda: next(losses), on_best, on_validation))
    assert steps == [i % n_train_batches for i in range(trace.pop("result").iterations)]
    return trace


SCENARIOS = {
    # name: (n_train_batches, n_epochs, patience, patience_increase, improvement_threshold, loss sequence)
    "steady improvement": (83, 1000, 5000, 2, 0.995, lambda k: 0.5 / (k + 1)),
    "never improves after the first": (83, 1000, 5000, 2, 0.995, lambda k: 0.3),
    "plateaus below the threshold": (10, 1000, 40, 2, 0.995, lambda k: 0.3 - 1e-4 * k),
    "getting worse": (50, 100, 200, 2, 0.995, lambda k: 0.1 + 0.01 * k),
    "n_epochs bound": (7, 3, 10_000, 2, 0.995, lambda k: 1.0 / (k + 1)),
    "patience smaller than an epoch": (100, 50, 60, 2, 0.995, lambda k: 0.2 - 0.01 * (k % 3)),
    "one batch per epoch": (1, 40, 4, 2, 0.995, lambda k: 1.0 / (k + 2)),
    "patience_increase 1.5": (13, 200, 30, 1.5, 0.9, lambda k: 0.9 ** k),
    "exactly equal losses are not a new best": (5, 30, 10, 2, 0.995, lambda k: [0.5, 0.4, 0.4, 0.39][min(k, 3)]),
}


def sequence(fn):
    k = 0
    while True:
        yield fn(k)
        k += 1


def test_validation_frequency_default_and_override():
    assert Patience(83, 1000, 5000, 2, 0.995).validation_frequency == 83
    assert Patience(2500, 1000, 10000, 2, 0.995).validation_frequency == 2500
    assert Patience(2500, 1000, 3000, 2, 0.995).validation_frequency == 1500
    assert Patience(2500, 1000, 3000, 2, 0.995, validation_frequency=100).validation_frequency == 100


def test_result_reports_stop_reason_and_history():
    policy = Patience(10, 2, 10_000, 2, 0.995)
    result = run_loop(policy, lambda i: 1.0, iter([0.5, 0.4]).__next__, lambda it: 0.25)
    assert (result.stopped_by, result.epochs, result.iterations) == ("n_epochs", 2, 20)
    assert [p.validation_error for p in result.history] == [0.5, 0.4]
    assert [p.is_best for p in result.history] == [True, True]
    assert result.history[-1].mean_cost == 1.0 and result.test_score == 0.25


def dltspec_chunked_loop(n_train_batches, n_epochs, patience, patience_increase, improvement_threshold, losses):
    """:func:`run_chunks` with a trainer that records its chunks: each must end at a validation, at the
    iteration where patience stops the loop, or at the last iteration of ``n_epochs``."""
    policy = Patience(n_train_batches, n_epochs, patience, patience_increase, improvement_threshold)
    chunks = []
    trace = traced(lambda on_best, on_validation: run_chunks(
        policy, lambda start, n: chunks.append((start, n)) or float(n), lambda: next(losses), on_best,
        on_validation))
    result = trace.pop("result")
    assert [start for start, _ in chunks] == [0] + [s + n for s, n in chunks[:-1]]
    assert sum(n for _, n in chunks) == result.iterations and all(n >= 1 for _, n in chunks)
    ends = [s + n - 1 for s, n in chunks]
    assert ends[:-1] == trace["validated_at"][:len(ends) - 1]  # every chunk but the last ends at a validation
    assert all(p.mean_cost == 1.0 for p in result.history)
    return trace


LOOPS = {"one call per minibatch": lambda *a: dltspec_loop(*a), "chunks": lambda *a: dltspec_chunked_loop(*a)}


@pytest.mark.parametrize("loop", LOOPS)
@pytest.mark.parametrize("name", list(SCENARIOS))
def test_same_decisions_as_the_tutorial(loop, name):
    *settings, fn = SCENARIOS[name]
    assert LOOPS[loop](*settings, sequence(fn)) == tutorial_loop(*settings, sequence(fn))


@pytest.mark.parametrize("loop", LOOPS)
@pytest.mark.parametrize("seed", range(25))
def test_same_decisions_on_random_sequences(loop, seed):
    rng = random.Random(seed)
    settings = (rng.randint(1, 60), rng.randint(1, 30), rng.randint(2, 400), rng.choice([1, 1.5, 2, 3]),
                rng.choice([0.9, 0.995, 1.0]))
    losses = [rng.random() for _ in range(10_000)]
    assert LOOPS[loop](*settings, iter(losses)) == tutorial_loop(*settings, iter(losses))
