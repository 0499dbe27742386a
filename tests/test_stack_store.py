"""The stacks the XLA cache keeps (dltspec.backends.stack_store): a warm stacked build reads its stacks instead
of building, comparing and converting PyTensor graphs, and trains them bit for bit as the cold build did."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

import dltspec
from dltspec import pipeline as api
from dltspec.backends import stack, xla_cache
from dltspec.backends.devices import device
from dltspec.backends.jax_backend import program_key
from dltspec.backends.stack_store import StackStore
from dltspec.training.stack import run_stack

from .conftest import ROOT

BASE = """\
dataset digits { valid_fraction = 0.2  test_fraction = 0.2  seed = 0 }
classifier mlp { hidden = [16]  activation = tanh  seed = 1234  n_out = 10 }
loss nll
optimizer sgd { learning_rate = 0.1  batch_size = 20 }
stopping patience { n_epochs = 4  patience = 100000 }
"""
#: two stacks' worth (max_stack=2): the first stack shrinks when its second variant stops (n_epochs = 2),
#: the third variant trains alone (another hidden size)
VARIANTS = [["optimizer.learning_rate=0.05"], ["optimizer.learning_rate=0.2", "stopping.n_epochs=2"],
            ["classifier.hidden=[8]"], ["optimizer.learning_rate=0.3", "classifier.seed=7"],
            ["optimizer.learning_rate=0.02"]]


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("DLTSPEC_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv(xla_cache.ENV, raising=False)
    return tmp_path / "cache" / "xla"


@pytest.fixture
def built(monkeypatch):
    """How many graphs :func:`dltspec.backends.stack.symbolic` built in this test."""
    count = {"graphs": 0}
    symbolic = stack.symbolic

    def counting(*args, **kwargs):
        count["graphs"] += 1
        return symbolic(*args, **kwargs)

    monkeypatch.setattr(stack, "symbolic", counting)
    return count


def specs(variants=VARIANTS) -> list:
    return [dltspec.read(text=BASE, overrides=list(v)) for v in variants]


def trained() -> list:
    """Every variant of the stacked ones trained: the groups, each variant's figures and parameters."""
    splits = api.load_data(specs()[0])
    out = []
    for indices, trainings in api.compile_stacks(specs(), splits, max_stack=2):
        if trainings is None:
            out.append((indices, None))
            continue
        results = run_stack(trainings, trainings[0].program.stack, [None] * len(trainings))
        out.append((indices, [(r.best_iteration, r.best_validation_error, r.test_error, r.stopped_by,
                               [p.validation_error for p in r.history], r.params) for r in results]))
    return out


def same(a: list, b: list) -> bool:
    if [i for i, _ in a] != [i for i, _ in b]:
        return False
    for (_, x), (_, y) in zip(a, b):
        if (x is None) != (y is None):
            return False
        for one, two in zip(x or [], y or []):
            if one[:5] != two[:5] or not all(np.array_equal(one[5][k], two[5][k]) for k in one[5]):
                return False
    return True


def test_a_warm_stacked_build_builds_no_graph_and_trains_bit_for_bit_as_the_cold_one(cache, built):
    cold = trained()
    assert [i for i, _ in cold] == [[0, 1], [2], [3, 4]] and cold[1][1] is None
    assert built["graphs"] == 5  # every variant's, compared (the third then stacks with nothing)
    assert len(list((cache / "stacks").glob("*.npz"))) == 1
    warm = trained()
    assert built["graphs"] == 5  # none more: not even for the smaller stack a shrink compiles
    assert same(warm, cold)
    with pytest.MonkeyPatch.context() as off:
        off.setenv(xla_cache.ENV, "0")
        assert same(trained(), cold)  # and as without the cache


def test_a_damaged_stack_file_is_built_anew(cache, built):
    cold = trained()
    (kept,) = (cache / "stacks").glob("*.npz")
    kept.write_bytes(kept.read_bytes()[:100])
    assert same(trained(), cold)
    assert built["graphs"] == 10
    assert StackStore(kept).read() is not None  # written again, whole


def test_the_stacks_key_holds_each_variants_program_its_order_and_the_bounds(cache):
    every = specs()
    splits = api.load_data(every[0])
    target = device("cpu")

    def path(chosen, sizes=None):
        keys = [program_key(s, splits, "float32", True) for s in chosen]
        return StackStore.of(keys, sizes or [2] * len(chosen), target).path

    base = path(every)
    assert path(specs()) == base
    assert path(every[::-1]) != base and path(every[:-1]) != base and path(every, [3] * len(every)) != base
    assert path(specs([*VARIANTS[:-1], ["optimizer.learning_rate=0.021"]])) != base
    assert path(specs([v + ["stopping.n_epochs=9"] for v in VARIANTS])) == base  # the loop is not the program
    os.environ[xla_cache.ENV] = "0"
    try:
        assert path(every) is None
    finally:
        del os.environ[xla_cache.ENV]


def test_a_warm_stacked_build_does_not_import_pytensor(cache, tmp_path):
    script = ("import json, sys, dltspec; from dltspec import pipeline as api; "
              "from dltspec.training.stack import run_stack; "
              "specs = [dltspec.read(sys.argv[1], overrides=[f'optimizer.learning_rate={r}']) for r in (0.05, 0.2)]; "
              "[(_, t)] = api.compile_stacks(specs, api.load_data(specs[0])); "
              "r = run_stack(t, t[0].program.stack, [None, None]); "
              "print(json.dumps({'pytensor': 'pytensor' in sys.modules, "
              "'W': [x.params['output.W'].tolist() for x in r]}))")
    spec = tmp_path / "digits.dlt"
    spec.write_text(BASE.replace("n_epochs = 4", "n_epochs = 2"))
    runs = [json.loads(subprocess.run([sys.executable, "-c", script, str(spec)], capture_output=True, text=True,
                                      check=True, cwd=ROOT, env=os.environ).stdout) for _ in range(2)]
    assert [r["pytensor"] for r in runs] == [True, False]
    assert runs[0]["W"] == runs[1]["W"]


def test_stacks_whose_initial_values_are_too_large_are_not_kept(cache, built, monkeypatch):
    from dltspec.backends import stack_store

    monkeypatch.setattr(stack_store, "MAX_BYTES", 1000)  # the digits MLPs: 4.3 KB of parameters each
    cold = trained()
    assert not list(cache.glob("stacks/*.npz"))
    assert same(trained(), cold) and built["graphs"] == 10  # built anew, as without the cache
