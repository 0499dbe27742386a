"""The JAX path: several minibatches per dispatch, data resident on the device, and the same
decisions as PyTensor's one-call-per-minibatch loop.

These run on JAX-CPU (CI installs jax through the ``test`` extra); on a GPU machine the same
code runs there. Only the tests that need jax skip when it is not importable.
"""
from __future__ import annotations

import importlib.util
import os
import subprocess
import sys

import numpy as np
import pytest

import dltspec
from dltspec import api
from dltspec.training.loop import ChunkCost, Patience, run_chunks, run_loop

from .conftest import SPECS

needs_jax = pytest.mark.skipif(importlib.util.find_spec("jax") is None, reason="jax is not installed")

LOGISTIC = """\
dataset digits { seed = 0 }
classifier logistic { n_out = 10 }
loss nll
regularizer l2 { weight = 0.0001 }
optimizer sgd { learning_rate = 0.1  batch_size = 20 }
stopping patience { n_epochs = 4  patience = 2000 }
"""
MLP = """\
dataset digits { seed = 0 }
classifier mlp { hidden = [16]  activation = tanh  seed = 3 }
loss nll
regularizer l1 { weight = 0.0001 }
regularizer l2 { weight = 0.0001 }
optimizer sgd { learning_rate = 0.05  batch_size = 20 }
stopping patience { n_epochs = 3  patience = 2000 }
"""
# validation every 30 minibatches (patience // 2), 53 minibatches per epoch; patience grows to
# 1.5 * iter (not an integer): it stops the loop in the 5th epoch, between two validations
PATIENCE_STOPS = ["stopping.patience=60", "stopping.patience_increase=1.5", "stopping.improvement_threshold=0.95",
                  "stopping.n_epochs=50"]


def pytensor_loop(spec, backend: str, floatX: str):
    """The reference: PyTensor, one compiled call per minibatch, through :func:`run_loop`."""
    from dltspec.backends.pytensor_backend import build

    program = build(spec, api.load_data(spec), backend=backend, floatX=floatX)
    policy = Patience.from_block(spec.block("stopping"), program.n_batches["train"])
    best = {}

    def on_best(iter_):
        best.update(program.values())
        return program.error("test")

    loop = run_loop(policy, program.train_step, lambda: program.error("valid"), on_best)
    return loop, best


def decisions(history):
    return [(p.epoch, p.minibatch, p.iteration, p.validation_error, p.best_validation_error, p.is_best,
             p.test_error, p.patience) for p in history]


def assert_same_run(result: dltspec.Result, loop, best, rtol: float):
    assert decisions(result.history) == decisions(loop.history)
    assert (result.best_iteration, result.epochs, result.iterations, result.stopped_by) == \
        (loop.best_iter + 1, loop.epochs, loop.iterations, loop.stopped_by)
    assert (result.best_validation_error, result.test_error) == (loop.best_validation_loss, loop.test_score)
    np.testing.assert_allclose([p.mean_cost for p in result.history], [p.mean_cost for p in loop.history],
                               rtol=rtol)
    assert set(result.params) == set(best)
    for name, value in best.items():
        assert result.params[name].dtype == value.dtype
        np.testing.assert_allclose(result.params[name], value, rtol=rtol, atol=rtol)


@needs_jax
@pytest.mark.parametrize("overrides, stopped_by", [(PATIENCE_STOPS, "patience"), ([], "n_epochs")])
def test_float64_chunks_match_pytensor_one_call_per_minibatch(overrides, stopped_by):
    spec = dltspec.read(text=LOGISTIC, overrides=overrides)
    loop, best = pytensor_loop(spec, "python", "float64")
    result = dltspec.train(spec, backend="jax", floatX="float64", device="cpu")
    assert result.stopped_by == stopped_by and len(result.history) >= 3
    if stopped_by == "patience":
        assert result.iterations % 53 != 0 and not any(p.iteration == result.iterations - 1 for p in result.history)
    assert result.params["output.W"].dtype == np.float64
    assert_same_run(result, loop, best, rtol=1e-9)


@needs_jax
@pytest.mark.parametrize("hidden", [16, 32])  # batch-last, one minibatch evaluated at a time; batch-first, 25
def test_float32_mlp_makes_the_same_decisions_as_pytensor_numba(hidden):
    spec = dltspec.read(text=MLP, overrides=[f"classifier.hidden=[{hidden}]"])
    loop, best = pytensor_loop(spec, "numba", "float32")
    result = dltspec.train(spec, backend="jax", floatX="float32", device="cpu")
    assert result.params["hidden0.W"].dtype == np.float32 and len(result.history) == 3
    assert_same_run(result, loop, best, rtol=2e-5)


def jax_program(text: str, overrides=(), floatX="float32"):
    from dltspec.backends.jax_backend import build

    spec = dltspec.read(text=text, overrides=list(overrides))
    return spec, build(spec, api.load_data(spec), floatX=floatX, device_name="cpu")


def one_dispatch_per_minibatch(program):
    """``train_chunk`` split into one dispatch per minibatch."""
    return lambda start, n: ChunkCost.of_costs([program.train_chunk(i, 1).total for i in range(start, start + n)])


def jax_run(program, spec, chunked: bool):
    policy = Patience.from_block(spec.block("stopping"), program.n_batches["train"])
    best = []

    def on_best(iter_):
        best[:] = [program.snapshot()]
        return program.error("test")

    validate = lambda: program.error("valid")  # noqa: E731
    loop = (run_chunks(policy, program.train_chunk, validate, on_best) if chunked
            else run_chunks(policy, one_dispatch_per_minibatch(program), validate, on_best))
    return loop, program.arrays(best[0]), program.values()


@needs_jax
@pytest.mark.parametrize("overrides", [PATIENCE_STOPS, []])
def test_chunks_and_one_dispatch_per_minibatch_give_bitwise_identical_parameters(overrides):
    spec, program = jax_program(MLP, overrides)
    initial = program.values()
    chunked = jax_run(program, spec, chunked=True)
    program.set_values(initial)
    one_by_one = jax_run(program, spec, chunked=False)
    assert decisions(chunked[0].history) == decisions(one_by_one[0].history)
    assert chunked[0].iterations == one_by_one[0].iterations
    for got, want in zip(chunked[1:], one_by_one[1:]):  # best and last parameters
        assert all(np.array_equal(got[name], want[name]) for name in want)
    assert not np.array_equal(chunked[1]["hidden0.W"], initial["hidden0.W"])


@needs_jax
def test_each_step_reports_the_tutorial_s_cost_with_its_penalties():
    """A chunk's steps and dispatches of one minibatch report the same costs: the tutorial's, the NLL plus
    ``l1 * sum(|W|)`` and ``l2 * sum(W ** 2)`` over the weights at the step's parameters (checked by hand for
    the first step)."""
    spec, program = jax_program(MLP, floatX="float64")
    initial = program.values()
    x, y = (np.asarray(a[0]) for a in program.batches["train"])
    x = x.T if program.batch_last else x
    p_y = np.tanh(x @ initial["hidden0.W"] + initial["hidden0.b"]) @ initial["output.W"] + initial["output.b"]
    log_p = p_y - np.log(np.exp(p_y).sum(axis=1, keepdims=True))
    weights = [initial["hidden0.W"], initial["output.W"]]
    by_hand = (-log_p[np.arange(len(y)), y].mean() + 1e-4 * sum(np.abs(W).sum() for W in weights)
               + 1e-4 * sum((W ** 2).sum() for W in weights))
    assert program.train_chunk(0, 1).total == pytest.approx(by_hand, rel=1e-12)
    program.set_values(initial)
    chunk = program.train_chunk(0, 30)
    program.set_values(initial)
    afresh = one_dispatch_per_minibatch(program)(0, 30)
    assert chunk.total == pytest.approx(afresh.total, rel=1e-12)
    assert chunk.last_finite == pytest.approx(afresh.last_finite, rel=1e-12)
    without = jax_program("\n".join(line for line in MLP.splitlines() if not line.startswith("regularizer")),
                          floatX="float64")[1]
    assert without.train_chunk(0, 30).total < chunk.total  # the penalties are in the cost


@needs_jax
def test_data_and_parameters_stay_on_the_device():
    import jax

    _spec, program = jax_program(LOGISTIC)
    arrays = [a for pair in program.batches.values() for a in pair] + list(program.params) + list(program.hyper)
    for a in arrays:
        assert isinstance(a, jax.Array) and a.committed and a.devices() == {program.device}
    # 10 classes from minibatches of 20: batch-last on the CPU (dltspec.backends.layout)
    assert program.batch_last and program.batches["train"][0].shape == (53, 64, 20)
    assert program.batches["train"][1].shape == (53, 20) and program.batches["train"][1].dtype == np.int32

    with pytest.raises(Exception, match="host-to-device"):  # the guard does catch an implicit copy here
        with jax.transfer_guard_host_to_device("disallow"):
            jax.jit(lambda a: a + 1)(np.ones(3))
    with jax.transfer_guard_host_to_device("disallow"), jax.transfer_guard_device_to_host("disallow"):
        chunk = program.train_chunk(0, 60)  # the two iteration numbers go, a 3-number report comes back: explicitly
    assert isinstance(chunk, ChunkCost) and chunk.first_nonfinite is None and chunk.n_steps == 60
    assert all(isinstance(p, jax.Array) for p in program.params)
    with jax.transfer_guard_host_to_device("disallow"):
        assert 0 <= program.error("valid") < 1


@needs_jax
def test_one_compilation_serves_every_chunk_length():
    _spec, program = jax_program(LOGISTIC)
    for start, n_steps in [(0, 1), (1, 29), (30, 30), (60, 7)]:
        program.train_chunk(start, n_steps)
    assert len(program.chunk_fn.executables) == 1  # the chunk length is an argument, not a shape


def test_small_minibatches_are_evaluated_together_unless_batch_last_or_pretraining():
    from dltspec.backends.jitted import EVAL_ROWS, eval_group

    spec = dltspec.read(text=MLP)
    assert eval_group(spec, 20, batch_last=False) == EVAL_ROWS // 20 > 1
    assert eval_group(spec, 600, batch_last=False) == 1
    assert eval_group(spec, 20, batch_last=True) == 1
    spec.data["phase"] = 0  # a pre-training phase evaluates a reconstruction cost, not mistakes
    assert eval_group(spec, 20, batch_last=False) == 1


@needs_jax
@pytest.mark.parametrize("rows", [40, 60, 2000])  # 2 and 3 minibatches at a time (the last group overlaps); padded
def test_minibatches_evaluated_together_give_the_figures_of_one_at_a_time(monkeypatch, rows):
    from dltspec.backends import jitted

    wide = ["classifier.hidden=[32]"]  # a first layer wider than the minibatch: batch-first
    monkeypatch.setattr(jitted, "EVAL_ROWS", 20)
    spec, alone = jax_program(MLP, wide)
    monkeypatch.setattr(jitted, "EVAL_ROWS", rows)
    _spec, together = jax_program(MLP, wide)
    assert (alone.group, together.group) == (1, rows // 20)
    n = alone.n_batches["valid"]
    assert n % 2 and n % 3 and n < 100  # so groups of 2 and 3 overlap, and one of 100 pads
    alone.train_chunk(0, 40)
    together.set_values(alone.values())
    for split in ("valid", "test"):
        assert together.error(split) == alone.error(split) > 0
    counts = np.asarray(together.errors_fn(together.snapshot(), *together.batches["valid"]))  # on the device
    assert counts.dtype == np.int32 and counts.shape == (n,)


@needs_jax
def test_evaluate_with_jax_matches_pytensor(tmp_path):
    spec = dltspec.read(text=LOGISTIC, overrides=["stopping.n_epochs=1"])
    path = dltspec.save(dltspec.train(spec, backend="jax", device="cpu"), tmp_path / "best.pkl")
    assert dltspec.evaluate(spec, path, backend="jax", device="cpu") == dltspec.evaluate(spec, path)


def test_placement_follows_backend_and_device(monkeypatch):
    from dltspec.backends import devices as jax_backend

    monkeypatch.setattr(jax_backend, "gpus", lambda: [])
    monkeypatch.setattr(jax_backend, "jax_module", lambda: None)
    monkeypatch.setattr(jax_backend, "default_backend", lambda: "jax")  # jax installed: the JAX path
    assert jax_backend.placement(None, None) == ("jax", None)
    assert jax_backend.placement(None, "cpu") == ("jax", "cpu")
    monkeypatch.setattr(jax_backend, "default_backend", lambda: "numba")  # without jax: Numba
    assert jax_backend.placement(None, None) == ("numba", None)
    assert jax_backend.placement("c", "cpu") == ("c", None)
    assert jax_backend.placement("jax", None) == ("jax", None)
    assert jax_backend.placement("jax", "cpu") == ("jax", "cpu")
    assert jax_backend.placement(None, "auto") == ("numba", None)
    assert jax_backend.placement("jax", "auto") == ("jax", "cpu")
    with pytest.raises(jax_backend.DeviceError, match="--device gpu runs the jax backend, not numba"):
        jax_backend.placement("numba", "gpu")
    monkeypatch.setattr(jax_backend, "default_backend", lambda: "jax")  # a GPU means jax is installed
    monkeypatch.setattr(jax_backend, "gpus", lambda: ["gpu0"])
    monkeypatch.setattr(jax_backend, "device", lambda name: name)
    assert jax_backend.placement(None, "auto") == ("jax", "gpu")
    assert jax_backend.placement(None, "gpu") == ("jax", "gpu")
    assert jax_backend.placement("numba", "auto") == ("numba", None)


def test_without_jax_the_jax_backend_is_a_one_line_error(monkeypatch):
    from dltspec.backends import devices as jax_backend

    monkeypatch.setitem(sys.modules, "jax", None)  # import jax raises ImportError
    assert jax_backend.gpus() == [] and jax_backend.placement(None, "auto") == ("numba", None)
    with pytest.raises(jax_backend.DeviceError, match=r"needs jax.*: pip install jax .*pip install 'dltspec\[gpu\]'"):
        jax_backend.placement("jax", None)
    with pytest.raises(jax_backend.DeviceError, match=r"needs jax.*: pip install jax"):
        jax_backend.placement("jax", None, load=False)  # a sweep's client: jax found, not imported


def test_a_sweeps_client_finds_jax_without_importing_it():
    code = ("import sys; from dltspec.backends.devices import placement; "
            "assert placement('jax', None, load=False) == ('jax', None); assert placement('jax', 'cpu', load=False)"
            " == ('jax', 'cpu'); assert 'jax' not in sys.modules; placement('jax', None); assert 'jax' in sys.modules")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_dltspec_imports_no_jax():
    code = "import sys, dltspec, dltspec.cli, dltspec.backends.jax_backend; assert 'jax' not in sys.modules"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True).returncode == 0


def run_cli(*args, cwd, **env):
    return subprocess.run([sys.executable, "-m", "dltspec", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=600, env={**os.environ, **env})


def test_device_gpu_without_a_gpu_is_a_one_line_usage_error(tmp_path):
    done = run_cli("run", str(SPECS / "digits.dlt"), "--device", "gpu", cwd=tmp_path, JAX_PLATFORMS="cpu")
    assert done.returncode == 2 and done.stdout == ""
    assert len(done.stderr.splitlines()) == 1 and done.stderr.startswith("dltspec run: ")
    assert "GPU" in done.stderr or "needs jax" in done.stderr
    assert not (tmp_path / "digits.best.pkl").exists()


@needs_jax
def test_cli_runs_and_evaluates_on_the_jax_backend(tmp_path):
    done = run_cli("run", str(SPECS / "digits.dlt"), "--set", "stopping.n_epochs=2", "--backend", "jax",
                   "--device", "cpu", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].endswith("(53 minibatches/epoch), jax on cpu float32; compiling...")
    assert "2 epochs (n_epochs)" in lines[-2] and (tmp_path / "digits.best.pkl").is_file()
    valid = lines[-2].split("best validation error ")[1].split(" %")[0]
    evaluated = run_cli("eval", str(SPECS / "digits.dlt"), "--params", "digits.best.pkl", "--backend", "jax",
                        cwd=tmp_path)
    assert evaluated.returncode == 0, evaluated.stderr
    assert evaluated.stdout.startswith(f"validation error {valid} %, test error ")


@needs_jax
def test_matrix_products_run_at_full_float32_precision():
    """JAX's default lets a GPU use TF32 (which changed the logistic run there); every product is pinned."""
    import re

    spec, program = jax_program(MLP, [])
    x, y = program.batches["valid"]
    lowered = [program.chunk_fn.jitted.lower(program.params, program.hyper, *program.batches["train"],
                                      program.scalar(0), program.scalar(1)).as_text(),
               program.errors_fn.jitted.lower(program.params, x, y).as_text()]
    for text in lowered:
        products = re.findall(r"dot_general.*", text)
        assert products and all("HIGHEST" in line for line in products), products


@needs_jax
def test_building_leaves_jax_with_64_bit_types_whatever_was_imported_first():
    """PyTensor's JAX dispatch switches 64-bit types off when first imported under float32; the build
    must switch them on after it (without that, a float32 LeNet ran a different course on a GPU)."""
    import subprocess

    code = ("import jax, dltspec; from dltspec import api; from dltspec.backends.jax_backend import build; "
            f"spec = dltspec.read(text={LOGISTIC!r}); build(spec, api.load_data(spec), floatX='float32', "
            "device_name='cpu'); assert jax.config.jax_enable_x64, 'x64 off'")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr



@needs_jax
def test_pytensors_jax_dispatch_never_switches_64_bit_types_off():
    """Every import of the dispatch goes through ``jax_dispatch``: a JAX function made before any build
    (as ``dltspec predict`` makes one), with PyTensor configured for float32, leaves 64-bit types on."""
    import subprocess

    code = ("import jax, pytensor.tensor as pt; from dltspec.backends.jax_backend import jax_function; "
            "x = pt.vector('x', dtype='float32'); f = jax_function([x], [x * 2]); "
            "assert jax.config.jax_enable_x64, 'x64 off'; import numpy as np; "
            "assert f(np.ones(3, 'float32'))[0].dtype == np.float32")
    flags = ",".join(f for f in (os.environ.get("PYTENSOR_FLAGS"), "floatX=float32") if f)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTENSOR_FLAGS": flags})
    assert done.returncode == 0, done.stderr
