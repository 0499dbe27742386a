"""Stacks: variants of one graph trained as one JAX program (dltspec.backends.stack, dltspec.training.stack,
dltspec.sweeps.stacked), each making the decisions it makes alone.

Not bit for bit: the stack's step is the ``jax.vmap`` of the variant's, so XLA computes each variant's
matrix products as one batched product (another kernel, other summation orders) and fuses the program
otherwise; the parameters of a variant trained in a stack and alone differ by float32 rounding, at most
``PARAMS_BOUND`` here. Every decision (validation errors, best iteration, test error, stop) is the same.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import dltspec
from dltspec import pipeline as api
from dltspec.training.stack import run_stack

BASE = """\
dataset digits { valid_fraction = 0.2  test_fraction = 0.2  seed = 0 }
classifier mlp { hidden = [16]  activation = tanh  seed = 1234  n_out = 10 }
loss nll
regularizer l2 { weight = 0.0001 }
optimizer sgd { learning_rate = 0.1  batch_size = 20 }
stopping patience { n_epochs = 12  patience = 100000 }
"""
#: variants that differ in values only: one stack. The second stops earlier (its own n_epochs), the third by
#: patience (validated twice an epoch)
VARIANTS = [["optimizer.learning_rate=0.05"],
            ["optimizer.learning_rate=0.2", "classifier.seed=7", "stopping.n_epochs=5"],
            ["regularizer.l2.weight=0.001", "stopping.patience=60", "stopping.patience_increase=1.1",
             "stopping.validation_frequency=27"]]
#: how far a variant's parameters trained in a stack may be from the same variant's trained alone (float32)
PARAMS_BOUND = 1e-5


def specs(variants=VARIANTS, base=BASE) -> list:
    return [dltspec.read(text=base, overrides=list(v)) for v in variants]


def figures(result) -> tuple:
    return (result.stopped_by, result.epochs, result.iterations, result.best_iteration,
            result.best_validation_error, result.test_error,
            [(p.iteration, p.validation_error, p.test_error) for p in result.history])


@pytest.fixture(scope="module")
def alone_and_stacked():
    """Each variant trained alone, and all of them trained as one stack."""
    splits = api.load_data(specs()[0])
    alone = [api.train(spec, backend="jax", splits=splits) for spec in specs()]
    [(indices, trainings)] = api.compile_stacks(specs(), splits)
    assert indices == [0, 1, 2] and trainings is not None
    stacked = run_stack(trainings, trainings[0].program.stack, [None] * 3)
    assert trainings[0].program.stack.size == 1  # shrunk as the second, then the third variant stopped
    return alone, stacked


def test_a_stacked_variant_makes_every_decision_it_makes_alone(alone_and_stacked):
    alone, stacked = alone_and_stacked
    assert [r.stopped_by for r in stacked] == ["n_epochs", "n_epochs", "patience"]
    assert [r.epochs for r in stacked] == [12, 5, alone[2].epochs] and alone[2].epochs < 12
    for one, many in zip(alone, stacked):
        assert figures(many) == figures(one)


def test_a_stacked_variants_parameters_are_its_parameters_alone_within_float32_rounding(alone_and_stacked):
    alone, stacked = alone_and_stacked
    worst = 0.0
    for one, many in zip(alone, stacked):
        assert one.params.keys() == many.params.keys()
        for name in one.params:
            assert many.params[name].dtype == one.params[name].dtype
            worst = max(worst, float(np.max(np.abs(many.params[name] - one.params[name]))))
    assert worst <= PARAMS_BOUND


def test_a_stack_that_masks_its_stopped_variants_instead_of_shrinking_decides_the_same(alone_and_stacked):
    alone, _stacked = alone_and_stacked
    splits = api.load_data(specs()[0])
    [(_, trainings)] = api.compile_stacks(specs(), splits)
    masked = run_stack(trainings, trainings[0].program.stack, [None] * 3, shrink=False)
    assert trainings[0].program.stack.size == 3  # never shrunk: the stopped variants were masked
    for one, many in zip(alone, masked):
        assert figures(many) == figures(one)


def test_a_variant_that_diverges_stops_alone_and_the_others_go_on():
    variants = [["optimizer.learning_rate=0.1"], ["optimizer.learning_rate=1e6"]]
    splits = api.load_data(specs(variants)[0])
    [(_, trainings)] = api.compile_stacks(specs(variants), splits)
    good, bad = run_stack(trainings, trainings[0].program.stack, [None, None])
    assert bad.stopped_by == "diverged" and bad.problems and bad.problems[0].code == "DLT601"
    assert figures(good) == figures(api.train(specs(variants)[0], backend="jax", splits=splits))


def test_only_specs_of_one_graph_stack_together():
    variants = [[], ["optimizer.learning_rate=0.3"], ["classifier.hidden=[24]"], ["optimizer.batch_size=10"],
                ["optimizer.momentum=0.9"], ["optimizer.momentum=0.5"], ["classifier.activation=relu"]]
    group_of = {}
    splits = api.load_data(specs([[]])[0])
    for indices, trainings in api.compile_stacks(specs(variants), splits):
        for i in indices:
            group_of[i] = (indices, trainings is not None)
    assert group_of[0] == group_of[1] == ([0, 1], True)
    assert group_of[4] == group_of[5] == ([4, 5], True)  # a momentum: one graph whatever its value
    assert all(group_of[i] == ([i], False) for i in (2, 3, 6))  # alone: no other of their graph


def test_at_most_max_stack_variants_stack_together():
    variants = [[f"optimizer.learning_rate={lr}"] for lr in (0.01, 0.02, 0.03, 0.04, 0.05)]
    splits = api.load_data(specs([[]])[0])
    grouped = api.compile_stacks(specs(variants), splits, max_stack=2)
    assert [indices for indices, _ in grouped] == [[0, 1], [2, 3], [4]]
    assert [t is None for _, t in grouped] == [False, False, True]


def test_on_a_cpu_a_graph_whose_parameters_leave_the_cache_trains_alone():
    from dltspec.backends import stack_limits
    from dltspec.backends.devices import device

    small, large = specs([[], ["classifier.hidden=[4096]"]])  # 4.8 KB and 1.2 MB of float32 parameters
    splits = api.load_data(small)
    assert stack_limits.limit(small, splits, None, device("cpu")) == stack_limits.MAX_STACK
    assert stack_limits.limit(large, splits, None, device("cpu")) == 1
    assert stack_limits.limit(small, splits, 64 * 4 * 1210 + sum(a.nbytes for s in splits.arrays.values() for a in s),
                       device("cpu")) < stack_limits.MAX_STACK  # a budget bounds it too
    assert [t is None for _, t in api.compile_stacks(specs([["classifier.hidden=[4096]"]] * 2), splits)] == [True] * 2


def test_the_stack_key_masks_values_and_keeps_shapes():
    from dltspec.sweeps.variants import stack_key

    keys = [stack_key(s) for s in specs([[], ["optimizer.learning_rate=0.3", "classifier.seed=2",
                                              "regularizer.l2.weight=0.5", "stopping.n_epochs=3"],
                                         ["classifier.hidden=[24]"], ["optimizer.batch_size=10"],
                                         ["regularizer.l2.weight=0"]])]
    assert keys[0] == keys[1] and len(set(keys)) == 4  # a penalty of weight 0 is left out of the graph


def test_a_variant_without_its_penalty_is_another_graph():
    from dltspec.backends import stack

    splits = api.load_data(specs([[]])[0])
    graphs = [stack.symbolic(s, splits, "float32") for s in specs([[], ["regularizer.l2.weight=0.5"],
                                                                   ["regularizer.l2.weight=0"]])]
    assert stack.groups(graphs) == [[0, 1], [2]]


# -- a sweep's stack on a worker: run directories, records, a kill ---------------------------------------------

SWEEP = BASE + "sweep grid { optimizer.learning_rate = [0.05, 0.2]  regularizer.l2.weight = [0.0001, 0.001] }\n"


def planned_sweep(tmp_path: Path, text: str = SWEEP, device: str | None = None):
    from dltspec.sweeps.tasks import plan, with_data
    from dltspec.sweeps.variants import checked_variants

    spec = dltspec.read(text=text, file=str(tmp_path / "s.dlt"), base_dir=tmp_path)
    passed, problems = with_data(spec, checked_variants(spec)[0])
    assert problems == []
    out = tmp_path / "out"
    (out / "runs").mkdir(parents=True, exist_ok=True)
    return plan(spec, passed, out, "jax", "float32", device, None)


def same_records(a: list[dict], b: list[dict]) -> None:
    keep = ("key", "index", "status", "best_validation_error", "test_error", "epochs", "iterations", "stopped_by")
    assert [{k: r[k] for k in keep} for r in a] == [{k: r[k] for k in keep} for r in b]


def test_a_stacked_job_gives_each_variant_the_record_and_run_it_has_alone(tmp_path):
    from dltspec.sweeps.stacked import jobs, train_stacked
    from dltspec.sweeps.tasks import train_variant

    planned = planned_sweep(tmp_path / "stacked")
    [job] = jobs(planned, 1, stack=True)
    assert len(job) == 4
    records = train_stacked(tuple(p.task for p in job))
    assert [r["stack"] for r in records] == [4] * 4 and {r["status"] for r in records} == {"finished"}
    alone = [train_variant(p.task) for p in planned_sweep(tmp_path / "alone")]
    same_records(records, alone)
    for record in records:
        run = Path(record["run"])
        assert (run / "checkpoint.pkl").is_file()
        assert (run / "summary.json").is_file() and (run / "metrics.jsonl").is_file()
    again = train_stacked(tuple(p.task for p in job))  # ended: nothing trains again
    same_records(again, records)
    assert all(r["wall_seconds"] == 0.0 for r in again)


def test_on_the_cpu_a_group_is_split_to_give_every_worker_a_stack(tmp_path):
    from dltspec.sweeps.stacked import jobs

    planned = planned_sweep(tmp_path)
    assert [len(j) for j in jobs(planned, 2, stack=True)] == [2, 2]
    assert [len(j) for j in jobs(planned, 1, stack=True)] == [4]
    assert [len(j) for j in jobs(planned, 2, stack=False)] == [1, 1, 1, 1]
    large = planned_sweep(tmp_path / "large", SWEEP.replace("hidden = [16]", "hidden = [4096]"), "cpu")
    assert {p.task.stack_key for p in large} == {None}  # on the CPU it would not pay: each trains alone
    assert [len(j) for j in jobs(large, 2, stack=True)] == [1, 1, 1, 1]


def test_a_local_cluster_of_fewer_workers_than_cores_shares_the_cores_out():
    from dltspec.sweeps.tasks import WORKER_ENV, worker_env

    assert worker_env(1) == WORKER_ENV  # one thread each: XLA and BLAS held to one
    shared = worker_env(2)
    assert shared["OMP_NUM_THREADS"] == shared["OPENBLAS_NUM_THREADS"] == "2"
    assert shared["XLA_FLAGS"] == ""  # not the single-thread flags a worker sets by default


def test_the_cpu_bound_on_a_stack_is_set_by_its_environment_variable():
    code = ("from dltspec.backends import stack_limits as s; print(s.CPU_STACK_BYTES)")
    seen = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                          env={**os.environ, "DLTSPEC_CPU_STACK_BYTES": "12345"}).stdout
    assert seen.strip() == "12345"


WORKER = """\
import pickle, sys
from dltspec.sweeps.stacked import train_stacked
print(pickle.dumps(train_stacked(pickle.loads(bytes.fromhex(sys.argv[1])))).hex())
"""


def test_a_stack_killed_while_it_trains_goes_on_from_each_variants_checkpoint(tmp_path):
    import pickle

    from dltspec.sweeps.stacked import jobs

    text = SWEEP.replace("n_epochs = 12", "n_epochs = 25") + "run { checkpoint_every = 1 }\n"
    planned = planned_sweep(tmp_path / "killed", text)
    [job] = jobs(planned, 1, stack=True)
    argument = pickle.dumps(tuple(p.task for p in job)).hex()
    worker = subprocess.Popen([sys.executable, "-c", WORKER, argument], stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL, env={**os.environ})
    checkpoints = [Path(p.task.run_dir) / "checkpoint.pkl" for p in job]
    deadline = time.monotonic() + 120
    while not all(c.exists() for c in checkpoints) and time.monotonic() < deadline and worker.poll() is None:
        time.sleep(0.05)
    worker.send_signal(signal.SIGKILL)
    worker.wait()
    assert all(c.exists() for c in checkpoints)
    from dltspec.sweeps.stacked import train_stacked

    resumed = train_stacked(tuple(p.task for p in job))
    assert all(r["resumed"] for r in resumed)
    whole = train_stacked(tuple(p.task for p in jobs(planned_sweep(tmp_path / "whole", text), 1, stack=True)[0]))
    same_records(resumed, whole)
