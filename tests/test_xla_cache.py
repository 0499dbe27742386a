"""dltspec's cache of compiled programs (dltspec.backends.xla_cache): a warm build reads them instead of compiling
and builds no PyTensor graph, with the same results; damaged entries, machines that cannot read their own
executables, an unwritable cache and ``DLTSPEC_XLA_CACHE=0`` only cost the compile."""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys

import numpy as np
import pytest

import dltspec
from dltspec import api
from dltspec.backends import jax_backend, xla_cache

from .conftest import DIGITS, ROOT

pytestmark = pytest.mark.skipif(importlib.util.find_spec("jax") is None, reason="jax is not installed")

L2 = DIGITS.replace("loss nll", "loss nll\nregularizer l2 { weight = 0.001 }")
MLP = L2.replace("classifier logistic { n_out = 10 }", "classifier mlp { hidden = [16]  seed = 3 }")  # drawn weights


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """A cache folder of this test only, with the cache on."""
    monkeypatch.setenv("DLTSPEC_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv(xla_cache.ENV, raising=False)
    return tmp_path / "cache" / "xla"


def outcome(text: str = L2, overrides=(), budget=None) -> tuple:
    """Build the spec on the CPU, train two chunks and evaluate: what a build computes."""
    spec = dltspec.read(text=text, overrides=list(overrides))
    program = jax_backend.build(spec, api.load_data(spec), device_name="cpu", budget=budget)
    assert (program.stream is not None) == (budget is not None)
    costs = [program.train_chunk(0, 30).total, program.train_chunk(30, 40).total]
    return costs, program.error("valid"), program.error("test"), program.values()


def same(a: tuple, b: tuple) -> bool:
    return a[:3] == b[:3] and a[3].keys() == b[3].keys() and all(np.array_equal(a[3][k], b[3][k]) for k in a[3])


def entries(folder) -> list:
    return sorted(folder.glob("*.xla"))


@pytest.fixture
def counted(monkeypatch):
    """Counts of graphs traced and programs compiled by XLA in this test."""
    from jax import stages

    counts = {"traced": 0, "compiled": 0}
    trace, compile_ = jax_backend.trace, stages.Lowered.compile

    def counting_trace(*args, **kwargs):
        counts["traced"] += 1
        return trace(*args, **kwargs)

    def counting_compile(self, *args, **kwargs):
        counts["compiled"] += 1
        return compile_(self, *args, **kwargs)

    monkeypatch.setattr(jax_backend, "trace", counting_trace)
    monkeypatch.setattr(stages.Lowered, "compile", counting_compile)
    return counts


def test_a_warm_build_traces_and_compiles_nothing_and_computes_the_same(cache, counted):
    cold = outcome()
    assert counted == {"traced": 1, "compiled": 2}  # the training chunk, the errors (valid and test: one shape)
    assert len(entries(cache)) == 2 and len(list((cache / "programs").glob("*.npz"))) == 1
    warm = outcome()
    assert counted == {"traced": 1, "compiled": 2}
    assert same(warm, cold)
    with pytest.MonkeyPatch.context() as off:
        off.setenv(xla_cache.ENV, "0")
        assert same(outcome(), cold)  # and as without the cache


def test_a_warm_run_does_not_import_pytensor(cache, tmp_path):
    script = ("import json, sys, dltspec; spec = dltspec.read(sys.argv[1], overrides=['stopping.n_epochs=2']); "
              "r = dltspec.train(spec, backend='jax', device='cpu'); "
              "print(json.dumps({'pytensor': 'pytensor' in sys.modules, 'history': [p.validation_error for p in "
              "r.history], 'W': r.params['output.W'].tolist()}))")
    spec = tmp_path / "digits.dlt"
    spec.write_text(L2)
    runs = [json.loads(subprocess.run([sys.executable, "-c", script, str(spec)], capture_output=True, text=True,
                                      check=True, cwd=ROOT, env=os.environ).stdout) for _ in range(2)]
    assert [r["pytensor"] for r in runs] == [True, False]
    assert runs[0]["history"] == runs[1]["history"] and runs[0]["W"] == runs[1]["W"]


def test_the_program_key_holds_what_makes_the_program_and_nothing_else(cache, monkeypatch):
    spec = dltspec.read(text=MLP)
    splits = api.load_data(spec)
    target = jax_backend.device("cpu")

    def path(overrides=(), floatX="float32", training=True, text=MLP):
        changed = dltspec.read(text=text, overrides=list(overrides))
        return jax_backend.store_for(changed, splits, floatX, target, training).path

    blocks = ('save { path = "x.pkl" }\nrun { device_memory = "1GB"  checkpoint_every = 2 }\n'
              "sweep grid { optimizer.learning_rate = [0.1, 0.2] }\n")
    assert path(["stopping.n_epochs=9", "stopping.patience=10"], text=MLP + blocks) == path()
    different = [path(["classifier.seed=4"]), path(["classifier.hidden=[17]"]), path(["classifier.activation=relu"]),
                 path(["optimizer.learning_rate=0.2"]), path(["regularizer.l2.weight=0.01"]),
                 path(["optimizer.batch_size=10"]), path(["classifier.n_out=12"]), path(floatX="float64"),
                 path(training=False)]
    assert len({path(), *different}) == 1 + len(different)
    monkeypatch.delenv("XLA_FLAGS", raising=False)  # an earlier test's in-process sweep worker may have set it
    before = path()
    monkeypatch.setenv("XLA_FLAGS", "--xla_cpu_use_thunk_runtime=true")
    assert path() != before
    monkeypatch.delenv("XLA_FLAGS")
    import jax

    with jax.default_matmul_precision("bfloat16"):  # JAX's configuration, changed in this process
        assert path() != before
    assert path() == before


def test_a_warm_build_starts_from_the_drawn_weights_a_cold_one_draws(cache, counted):
    cold = outcome(MLP)
    warm = outcome(MLP)
    assert counted["traced"] == 1 and same(warm, cold)
    other_seed = outcome(MLP, ["classifier.seed=4"])
    assert counted["traced"] == 2 and not np.array_equal(other_seed[3]["hidden0.W"], cold[3]["hidden0.W"])


def test_a_new_shape_of_a_known_program_traces_its_graph_then(cache, counted):
    outcome()
    streamed = outcome(budget=40_000)  # the same program on chunks of each split: new shapes
    assert counted == {"traced": 2, "compiled": 4}
    with pytest.MonkeyPatch.context() as off:
        off.setenv(xla_cache.ENV, "0")
        assert same(outcome(budget=40_000), streamed)


def test_a_damaged_executable_is_compiled_again_and_replaced(cache, counted):
    cold = outcome()
    for path in entries(cache):
        data = bytearray(path.read_bytes())
        data[-100] ^= 0xFF
        path.write_bytes(bytes(data))
    assert same(outcome(), cold)  # the program is known: its graph is built again for the executables only
    assert counted == {"traced": 2, "compiled": 4}
    assert all(xla_cache.payload_of(p.read_bytes()) is not None for p in entries(cache))
    assert same(outcome(), cold) and counted == {"traced": 2, "compiled": 4}  # and read again after


def test_a_torn_program_entry_is_built_again(cache, counted):
    cold = outcome()
    (program,) = (cache / "programs").glob("*.npz")
    program.write_bytes(program.read_bytes()[:-50])
    assert same(outcome(), cold)
    assert counted == {"traced": 2, "compiled": 2}  # the executables were whole
    assert same(outcome(), cold) and counted == {"traced": 2, "compiled": 2}


def test_a_pruned_executable_of_a_known_program_is_compiled_again(cache, counted):
    cold = outcome()
    for path in entries(cache):
        path.unlink()
    assert same(outcome(), cold) and counted == {"traced": 2, "compiled": 4}
    assert len(entries(cache)) == 2


def test_a_cpu_that_cannot_read_its_executables_is_marked_and_never_tried_again(cache, counted, monkeypatch):
    def refused(*args, **kwargs):
        raise RuntimeError("Target machine feature +prefer-no-gather is not supported on the host machine")

    load = xla_cache.load
    monkeypatch.setattr(xla_cache, "load", refused)
    cold = outcome()
    assert entries(cache) == [] and len(list(cache.glob("rejected-*"))) == 1
    tried = []
    monkeypatch.setattr(xla_cache, "load", lambda *a: tried.append(1) or load(*a))
    assert same(outcome(), cold)
    assert tried == [] and entries(cache) == [] and counted["compiled"] == 4


def test_the_cache_can_be_turned_off(cache, counted, monkeypatch):
    monkeypatch.setenv(xla_cache.ENV, "off")
    outcome()
    assert not cache.exists()
    monkeypatch.delenv(xla_cache.ENV)
    outcome()
    monkeypatch.setenv(xla_cache.ENV, "0")
    outcome()  # a warm cache is there, and not read
    assert counted == {"traced": 3, "compiled": 6}


def test_a_cache_folder_that_cannot_be_written_only_costs_the_compile(tmp_path, monkeypatch):
    (tmp_path / "file").write_text("not a folder")
    monkeypatch.setenv("DLTSPEC_CACHE_DIR", str(tmp_path / "file" / "cache"))
    monkeypatch.delenv(xla_cache.ENV, raising=False)
    first = outcome()
    assert same(outcome(), first)


def test_a_cache_folder_that_cannot_be_looked_at_only_costs_the_compile(cache, monkeypatch):
    from pathlib import Path

    real = Path.stat

    def denied(self, *args, **kwargs):
        if str(self).startswith(str(cache)):
            raise PermissionError(13, "Permission denied", str(self))
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Path, "stat", denied)
    first = outcome()
    assert same(outcome(), first)


def test_a_cache_folder_others_can_write_is_not_used(cache, counted):
    cache.mkdir(parents=True)
    cache.chmod(0o777)  # an entry there could be anyone's: executables are read back with pickle
    outcome()
    outcome()
    assert counted == {"traced": 2, "compiled": 4} and list(cache.iterdir()) == []
    cache.chmod(0o700)
    outcome()
    assert len(entries(cache)) == 2


def test_a_new_cache_folder_is_private(cache):
    outcome()
    assert cache.stat().st_mode & 0o777 == 0o700


def test_an_entry_carries_a_checksum_of_its_executable():
    entry = xla_cache.entry_bytes(b"executable bytes")
    assert xla_cache.payload_of(entry) == b"executable bytes"
    assert xla_cache.payload_of(entry[:-1]) is None
    assert xla_cache.payload_of(entry[:-1] + b"X") is None
    assert xla_cache.payload_of(b"something else entirely") is None
    assert xla_cache.payload_of(xla_cache.MAGIC) is None


def test_pruning_keeps_the_most_recently_used(tmp_path):
    import time

    for i in range(5):
        path = tmp_path / f"{i}.xla"
        path.write_bytes(b"x")
        os.utime(path, (1000 + i, 1000 + i))
    (tmp_path / "other.npz").write_bytes(b"x")
    (tmp_path / ".3.xla.abc.tmp").write_bytes(b"half")  # a write killed half-way, long ago
    os.utime(tmp_path / ".3.xla.abc.tmp", (1000, 1000))
    (tmp_path / ".4.xla.def.tmp").write_bytes(b"half")  # one being written now
    xla_cache.prune(tmp_path, keep=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".4.xla.def.tmp", "3.xla", "4.xla", "other.npz"]
    assert time.time() - (tmp_path / ".4.xla.def.tmp").stat().st_mtime < 3600


def test_the_tree_structures_of_a_program_survive_the_store(cache):
    import jax

    spec = dltspec.read(text=L2)
    program = jax_backend.build(spec, api.load_data(spec), device_name="cpu")
    lowered = [program.chunk_fn.jitted.lower(program.params, program.hyper, *program.batches["train"], program.scalar(0),
                                      program.scalar(1)),
               program.errors_fn.jitted.lower(program.params, *program.batches["valid"])]
    for low in lowered:
        for tree in (low.in_tree, low.out_tree):
            data = json.loads(json.dumps(xla_cache.skeleton(tree)))
            assert xla_cache.structure(data) == tree
    assert xla_cache.structure(xla_cache.skeleton(jax.tree_util.tree_structure([{"a": (1, 2)}, 3]))) == \
        jax.tree_util.tree_structure([{"a": (1, 2)}, 3])
