"""dltspec's patience loop makes the same decisions as the tutorial's loop, transcribed literally."""
from __future__ import annotations

import math
import random

import pytest

from dltspec.training.loop import ChunkCost, LoopState, Patience, run_chunks, run_loop, steps_within


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


def dltspec_chunked_loop(n_train_batches, n_epochs, patience, patience_increase, improvement_threshold, losses,
                         chunk_seconds=0.25):
    """:func:`run_chunks` with a trainer that records its chunks: none may train past a validation, the
    iteration where patience stops the loop, or the last iteration of ``n_epochs``. A fake clock makes
    every minibatch take 0.01 s, so chunks are also cut at ``chunk_seconds``."""
    policy = Patience(n_train_batches, n_epochs, patience, patience_increase, improvement_threshold)
    chunks, now = [], [0.0]

    def train_chunk(start, n):
        chunks.append((start, n))
        now[0] += 0.01 * n
        return ChunkCost(float(n), n, None, 1.0)

    trace = traced(lambda on_best, on_validation: run_chunks(
        policy, train_chunk, lambda: next(losses), on_best, on_validation, clock=lambda: now[0],
        chunk_seconds=chunk_seconds))
    result = trace.pop("result")
    assert [start for start, _ in chunks] == [0] + [s + n for s, n in chunks[:-1]]
    assert sum(n for _, n in chunks) == result.iterations and all(n >= 1 for _, n in chunks)
    assert chunks[0][1] == 1  # the first minibatch alone: training has started
    assert all(n <= max(1, round(chunk_seconds / 0.01)) for _, n in chunks[1:])
    ends = {s + n - 1 for s, n in chunks}
    assert set(trace["validated_at"]) <= ends
    assert not any(s <= v < s + n - 1 for s, n in chunks for v in trace["validated_at"])
    assert all(p.mean_cost == 1.0 for p in result.history)
    return trace


LOOPS = {"one call per minibatch": lambda *a: dltspec_loop(*a), "chunks": lambda *a: dltspec_chunked_loop(*a),
         "short chunks": lambda *a: dltspec_chunked_loop(*a, chunk_seconds=0.05)}


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


def test_chunks_are_sized_to_the_time_they_take():
    assert steps_within(0.25, 10, 0.05) == 50
    assert steps_within(0.25, 10, 10.0) == 1  # never fewer than one minibatch
    assert steps_within(0.25, 3, 0.0) == 6  # too fast to measure: grow


def test_chunk_cost_locates_the_first_cost_that_is_not_finite():
    assert ChunkCost.of_costs([1.0, 2.0]) == ChunkCost(3.0, 2, None, 2.0)
    cost = ChunkCost.of_costs([1.0, 0.5, math.nan, math.inf])
    assert (cost.first_nonfinite, cost.last_finite, cost.n_steps) == (2, 0.5, 4)
    assert ChunkCost.of_costs([math.inf]).last_finite is None


SETTINGS = (13, 40, 60, 2, 0.995)


def interrupted_then_resumed(stop_after_chunks: int, losses: list[float]):
    """Run the loop until ``should_stop`` fires after ``stop_after_chunks`` chunks, then go on from its
    :class:`Patience` and :class:`LoopState` (copied through their fields, as a checkpoint does)."""
    from dataclasses import asdict

    policy, state, steps, chunks, now = Patience(*SETTINGS), LoopState(), [], [0], [0.0]
    validations = iter(losses)

    def train_chunk(start, n):
        chunks[0] += 1
        now[0] += 0.01 * n  # a fake clock: chunks of at most 5 minibatches
        steps.extend(range(start, start + n))
        return ChunkCost(float(n), n, None, 1.0)

    options = dict(clock=lambda: now[0], chunk_seconds=0.05)
    first = run_chunks(policy, train_chunk, lambda: next(validations), lambda it: it, state=state,
                       should_stop=lambda: chunks[0] >= stop_after_chunks, **options)
    assert first.stopped_by == "interrupted"
    policy, state = Patience(**asdict(policy)), LoopState(**asdict(state))
    second = run_chunks(policy, train_chunk, lambda: next(validations), lambda it: it, state=state, **options)
    return second, steps, first.history + second.history


@pytest.mark.parametrize("stop_after_chunks", [1, 2, 3, 5, 8, 13])
def test_a_loop_resumed_from_its_state_decides_as_the_uninterrupted_loop(stop_after_chunks):
    losses = [0.5 / (k + 1) if k < 6 else 0.3 for k in range(1000)]
    reference = run_loop(Patience(*SETTINGS), lambda i: 1.0, iter(losses).__next__, lambda it: it)
    resumed, steps, history = interrupted_then_resumed(stop_after_chunks, losses)
    assert steps == list(range(reference.iterations))  # every minibatch once, in order
    assert (resumed.best_iter, resumed.best_validation_loss, resumed.test_score, resumed.stopped_by,
            resumed.epochs, resumed.iterations) == (reference.best_iter, reference.best_validation_loss,
                                                    reference.test_score, reference.stopped_by,
                                                    reference.epochs, reference.iterations)
    assert [(p.iteration, p.patience, p.is_best) for p in history] == \
        [(p.iteration, p.patience, p.is_best) for p in reference.history]


def test_a_finished_loop_resumed_trains_nothing():
    policy, state = Patience(*SETTINGS), LoopState()
    run_loop(policy, lambda i: 1.0, iter([0.3] * 100).__next__, lambda it: it, state=state)
    calls = []
    again = run_loop(policy, lambda i: calls.append(i) or 1.0, iter([]).__next__, lambda it: it, state=state)
    assert calls == [] and again.stopped_by == "patience" and again.iterations == state.iteration + 1


def test_a_cost_that_is_not_finite_stops_the_loop_where_it_happened():
    costs = {i: 1.0 / (i + 1) for i in range(100)}
    costs[30], costs[31] = math.nan, math.inf
    validated = []
    result = run_loop(Patience(10, 50, 1000, 2, 0.995), lambda i, it=iter(range(1000)): costs.get(next(it), 1.0),  # noqa: B008
                      lambda: validated.append(1) or 0.5, lambda it: it)
    assert result.stopped_by == "diverged"
    assert (result.divergence.iteration, result.divergence.epoch, result.divergence.minibatch) == (30, 4, 1)
    assert result.divergence.last_finite_cost == pytest.approx(1 / 30)
    assert len(validated) == 3 and result.iterations == 30  # nothing after the bad minibatch counts as trained


def test_should_stop_before_any_training():
    result = run_loop(Patience(*SETTINGS), lambda i: 1.0, iter([]).__next__, lambda it: it, should_stop=lambda: True)
    assert (result.stopped_by, result.iterations, result.epochs) == ("interrupted", 0, 0)
