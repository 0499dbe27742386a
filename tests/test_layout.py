"""Batch-last minibatches on the JAX path (dltspec.backends.layout): when they are chosen, that the products are
flipped, that the host copy is right, and that training decides exactly as the batch-first layout does."""
from __future__ import annotations

import importlib.util

import numpy as np
import pytest

import dltspec
from dltspec import api

from .conftest import DIGITS, SMALL_LENET as LENET

pytestmark = pytest.mark.skipif(importlib.util.find_spec("jax") is None, reason="jax is not installed")

MLP = DIGITS.replace("classifier logistic { n_out = 10 }", "classifier mlp { hidden = [32]  seed = 3 }")


def model(text: str, batch_size: int):
    """The minibatch ``x`` and the model for a spec on the digits (64 features)."""
    import pytensor.tensor as pt

    from dltspec.model.graph import symbolic

    spec = dltspec.read(text=text)
    x = pt.tensor("x", shape=(batch_size, 64), dtype="float32")
    y = pt.tensor("y", shape=(batch_size,), dtype="int32")
    return x, symbolic(spec, 64, 10, x, y).model


def forward(text: str, batch_size: int):
    """The minibatch ``x`` and the model's output."""
    x, m = model(text, batch_size)
    return x, m.p_y_given_x


@pytest.mark.parametrize("text, batch_size, expected", [
    (DIGITS, 20, True),  # 10 classes from minibatches of 20
    (DIGITS, 10, False),  # as wide as the minibatch: nothing to gain
    (DIGITS, 8, False),
    (MLP, 20, False),  # a first layer 32 wide
    (MLP, 64, True),
    (LENET, 20, False),  # the convolution gathers from x.T: no product reads x
])
def test_batch_last_is_chosen_where_the_first_product_is_narrower_than_the_minibatch(text, batch_size, expected):
    from dltspec.backends.layout import pays

    assert pays(*forward(text, batch_size)) is expected


def test_the_flipped_graph_computes_the_same_values():
    import jax
    import pytensor.tensor as pt
    from pytensor.graph.replace import clone_replace

    from dltspec.backends.jax_backend import jax_function
    from dltspec.backends.layout import Barrier

    x, m = model(DIGITS, 20)
    params = [p for _, p in m.params]
    rng = np.random.default_rng(0)
    values = [rng.normal(size=p.get_value().shape).astype(np.float32) for p in params]
    xs = rng.random((20, 64), dtype=np.float32)
    rows = jax.jit(jax_function(params + [x], [m.p_y_given_x]))(*values, xs)[0]
    xT = pt.tensor("xT", shape=(64, 20), dtype="float32")
    flipped = jax_function(params + [xT], [clone_replace(m.p_y_given_x, {x: xT.T})], xT)
    last = jax.jit(flipped)(*values, np.ascontiguousarray(xs.T))[0]
    assert rows.shape == last.shape == (20, 10)
    np.testing.assert_allclose(last, rows, rtol=1e-5, atol=1e-7)
    # the product is W.T @ xT behind a barrier, which XLA cannot fold back into x @ W
    hlo = jax.jit(flipped).lower(*values, np.ascontiguousarray(xs.T)).as_text()
    assert "optimization_barrier" in hlo and "dot_general" in hlo
    assert Barrier().make_node(xT).outputs[0].type == xT.type


def test_the_host_copy_is_each_minibatch_transposed_and_page_aligned(tmp_path):
    from dltspec.data.stream import batch_last

    x = np.arange(103 * 7, dtype=np.float64).reshape(103, 7)
    np.save(tmp_path / "x.npy", x)
    for source in (x, np.load(tmp_path / "x.npy", mmap_mode="r")):
        for rows in (10, 40, 1 << 14):  # blocks smaller than, a few and all minibatches
            got = batch_last(source, 10, "float32", rows=rows)
            assert got.shape == (10, 7, 10) and got.dtype == np.float32 and got.ctypes.data % 4096 == 0
            assert np.array_equal(got, x[:100].reshape(10, 10, 7).transpose(0, 2, 1).astype(np.float32))
        padded = batch_last(source[:35], 10, "float32", n_batches=5, rows=20)  # 3 full minibatches, then zeros
        assert padded.shape == (5, 7, 10) and not padded[3:].any()
        assert np.array_equal(padded[:3], x[:30].reshape(3, 10, 7).transpose(0, 2, 1).astype(np.float32))


def trained(text: str, batch_last: bool, monkeypatch, overrides=(), budget=None):
    from dltspec.backends import layout

    if not batch_last:  # a rule changed in this process: the compile cache cannot know, so it is off
        monkeypatch.setattr(layout, "pays", lambda x, output: False)
        monkeypatch.setenv("DLTSPEC_XLA_CACHE", "0")
    spec = dltspec.read(text=text, overrides=list(overrides))
    training = api.compile_training(spec, backend="jax", device="cpu", budget=budget)
    assert training.program.batch_last is batch_last
    return training, training.run()


@pytest.mark.parametrize("overrides", [[], ["regularizer.l2.weight=0.001", "stopping.n_epochs=6"]])
def test_training_batch_last_decides_as_batch_first(monkeypatch, overrides):
    text = DIGITS if not overrides else DIGITS.replace("loss nll", "loss nll\nregularizer l2 { weight = 0 }")
    _, first = trained(text, False, monkeypatch, overrides)
    monkeypatch.undo()
    training, last = trained(text, True, monkeypatch, overrides)
    program = training.program  # the training step's product is flipped too, behind its barrier
    hlo = program.chunk_fn.jitted.lower(program.params, program.hyper, *program.batches["train"], program.scalar(0),
                                 program.scalar(1)).as_text()
    assert "optimization_barrier" in hlo
    assert [(p.iteration, p.validation_error, p.is_best, p.test_error) for p in last.history] == \
        [(p.iteration, p.validation_error, p.is_best, p.test_error) for p in first.history]
    assert (last.best_iteration, last.test_error) == (first.best_iteration, first.test_error)
    for name in first.params:  # the same products, summed in another order: rounding apart
        np.testing.assert_allclose(last.params[name], first.params[name], rtol=1e-4, atol=1e-6)


def test_a_streamed_batch_last_run_is_bit_identical_to_the_resident_one(monkeypatch):
    streamed, s_result = trained(DIGITS, True, monkeypatch, budget=60_000)
    _, r_result = trained(DIGITS, True, monkeypatch)
    assert streamed.program.stream["train"].n_chunks > 1
    assert [(p.iteration, p.validation_error) for p in s_result.history] == \
        [(p.iteration, p.validation_error) for p in r_result.history]
    assert all(s_result.params[k].tobytes() == r_result.params[k].tobytes() for k in r_result.params)


@pytest.mark.parametrize("m, k, n, rewritten", [
    (20, 70_000, 25, True),  # a kernel-major convolution's weight gradient: a small output, a long sum
    (64, 70_000, 64, False),  # an output of 4,096 entries: YNNPACK's form is the faster
    (20, 30_000, 25, False),  # a short sum
])
def test_a_product_with_a_small_output_and_a_long_sum_is_transposed_behind_a_barrier(m, k, n, rewritten):
    import jax
    import pytensor.tensor as pt

    from dltspec.backends.jax_backend import jax_function

    g, X = pt.tensor("g", shape=(m, k), dtype="float32"), pt.tensor("X", shape=(n, k), dtype="float32")
    rng = np.random.default_rng(0)
    values = rng.random((m, k), dtype=np.float32), rng.random((n, k), dtype=np.float32)
    plain, cpu = (jax.jit(jax_function([g, X], [pt.dot(g, X.T)], cpu=c)) for c in (False, True))
    np.testing.assert_allclose(cpu(*values)[0], plain(*values)[0], rtol=1e-5)
    np.testing.assert_allclose(cpu(*values)[0], values[0].astype(np.float64) @ values[1].T.astype(np.float64),
                               rtol=1e-4)
    assert ("optimization_barrier" in cpu.lower(*values).as_text()) is rewritten
    assert "optimization_barrier" not in plain.lower(*values).as_text()


def test_the_cpu_path_builds_kernel_major_convolutions_and_trains_as_pixel_major_does(monkeypatch, conv_forms):
    forms = conv_forms
    monkeypatch.setenv("DLTSPEC_XLA_CACHE", "0")  # build the graph here, not from the cache
    spec = dltspec.read(text=LENET, overrides=["stopping.n_epochs=3"])
    kernel_major = api.compile_training(spec, backend="jax", device="cpu", floatX="float64")
    assert forms and all(forms)
    built = len(forms)
    pixel_major = api.compile_training(spec, backend="python", floatX="float64")  # PyTensor's: the default form
    assert len(forms) > built and not any(forms[built:])
    runs = kernel_major.run(), pixel_major.run()
    assert [(p.validation_error, p.is_best) for p in runs[0].history] == \
        [(p.validation_error, p.is_best) for p in runs[1].history]
    for name, value in runs[1].params.items():
        np.testing.assert_allclose(runs[0].params[name], value, rtol=1e-9, atol=1e-12)


def scatter_graph(indices, y_shape, set_rows=False, x_shape=(6, 4), y_dtype="float32"):
    """``x[indices] += y`` (or ``=``) of a float32 ``x``: its inputs, the output and a random value for each input."""
    import pytensor.tensor as pt

    x, y = pt.tensor("x", shape=x_shape, dtype="float32"), pt.tensor("y", shape=y_shape, dtype=y_dtype)
    out = pt.set_subtensor(x[indices], y) if set_rows else pt.inc_subtensor(x[indices], y)
    rng = np.random.default_rng(1)
    return [x, y], out, (rng.random(x_shape, dtype=np.float32), rng.random(y_shape).astype(y_dtype))


def row_scatter_count(inputs, outputs) -> int:
    """How many :class:`ScatterAddRows` the rewrite leaves in the graph of ``outputs``, rewritten first as
    ``jax_function`` rewrites it (PyTensor's JAX mode)."""
    import pytensor
    from pytensor.compile.mode import get_mode
    from pytensor.graph.fg import FunctionGraph

    from dltspec.backends.layout import ScatterAddRows, row_scatters

    fgraph, mode = FunctionGraph(inputs, outputs, clone=True), get_mode("JAX")
    with pytensor.config.change_flags(mode=mode):
        mode.optimizer(fgraph)
    row_scatters(fgraph)
    return sum(isinstance(node.op, ScatterAddRows) for node in fgraph.apply_nodes)


@pytest.mark.parametrize("indices, y_shape, x_shape, set_rows, y_dtype, rewritten", [
    (np.array([5, 0, 5, 2, 0]), (5, 4), (6, 4), False, "float32", True),  # repeated rows: summed
    (np.array([5]), (1, 4), (6, 4), False, "float32", True),  # the last row
    (np.array([3, 1, 3]), (3,), (6,), False, "float32", True),  # a vector: rows of one number
    (np.array([0, 2, 0]), (3, 2, 3), (4, 2, 3), False, "float32", True),  # rows that are matrices
    (np.array([5, 0, 5, 2, 0]), (5, 1), (6, 4), False, "float32", False),  # y broadcast along the columns
    (np.array([-1, 0]), (2, 4), (6, 4), False, "float32", False),  # a negative index (numpy's: from the end)
    (np.array([1, 3]), (2, 4), (6, 4), True, "float32", False),  # set, not add
    (np.array([5, 1]), (2, 4), (6, 4), False, "float64", False),  # y of another dtype: left to PyTensor's
])
@pytest.mark.filterwarnings("ignore:scatter inputs have incompatible types:FutureWarning")  # PyTensor's, float64 y
def test_a_scatter_of_whole_rows_at_constant_indices_reads_its_updates_in_place(indices, y_shape, x_shape, set_rows,
                                                                              y_dtype, rewritten):
    import jax

    from dltspec.backends.jax_backend import jax_function

    inputs, out, values = scatter_graph(indices, y_shape, set_rows, x_shape, y_dtype)
    assert row_scatter_count(inputs, [out]) == int(rewritten)
    plain, cpu = (jax.jit(jax_function(inputs, [out], cpu=c)) for c in (False, True))
    expected = values[0].copy()
    if set_rows:
        expected[indices] = values[1]
    else:
        np.add.at(expected, indices, np.broadcast_to(values[1], (len(indices), *x_shape[1:])).astype(np.float32))
    np.testing.assert_allclose(cpu(*values)[0], expected, rtol=1e-6)
    np.testing.assert_allclose(plain(*values)[0], expected, rtol=1e-6)
    window = f"{len(indices)}x1x{'x'.join(map(str, x_shape[1:]))}xf32" if len(x_shape) > 1 else f"{len(indices)}x1xf32"
    assert (window in cpu.lower(*values).as_text()) is rewritten  # the updates as the scatter reads them
    assert window not in plain.lower(*values).as_text()


def test_an_index_past_the_end_or_no_index_is_not_rewritten():
    for indices, y_shape in ((np.array([6, 0]), (2, 4)), (np.array([], dtype=np.int64), (0, 4))):
        inputs, out, _ = scatter_graph(indices, y_shape)
        assert row_scatter_count(inputs, [out]) == 0


def test_the_row_scatter_gives_x_at_indices_add_under_vmap():
    """A stacked sweep ``jax.vmap``s the step of its variants: the rewritten scatter with either input batched."""
    import jax
    import jax.numpy as jnp

    from dltspec.backends.jax_backend import jax_function

    indices = np.array([5, 0, 5, 2, 0])
    inputs, out, _ = scatter_graph(indices, (5, 4))
    cpu = jax_function(inputs, [out], cpu=True)
    rng = np.random.default_rng(2)
    xs, ys = (jnp.asarray(rng.random(shape, dtype=np.float32)) for shape in ((3, 6, 4), (3, 5, 4)))
    for in_axes, args in (((0, 0), (xs, ys)), ((None, 0), (xs[0], ys)), ((0, None), (xs, ys[0]))):
        np.testing.assert_allclose(jax.jit(jax.vmap(lambda x, y: cpu(x, y)[0], in_axes))(*args),
                                   jax.vmap(lambda x, y: x.at[indices].add(y), in_axes)(*args), rtol=1e-6)


def test_the_convolution_s_input_gradient_is_the_row_scatter(monkeypatch):
    """The scatter the rewrite is for: the col2im of LeNet's second layer, on the JAX path on the CPU."""
    from dltspec.backends import layout

    monkeypatch.setenv("DLTSPEC_XLA_CACHE", "0")  # build the graph here, not from the cache
    counts, rewrite = [], layout.row_scatters

    def counted(fgraph):
        rewrite(fgraph)
        counts.append(sum(isinstance(node.op, layout.ScatterAddRows) for node in fgraph.apply_nodes))

    monkeypatch.setattr(layout, "row_scatters", counted)
    spec = dltspec.read(text=LENET, overrides=["stopping.n_epochs=1"])
    api.compile_training(spec, backend="jax", device="cpu")
    assert counts and max(counts) == 1  # the step's one scatter (the first layer's input needs no gradient)


def test_the_row_scatter_computes_numpy_s_sums_outside_jax():
    import pytensor
    import pytensor.tensor as pt

    from dltspec.backends.layout import ScatterAddRows

    x, y = pt.matrix("x", dtype="float64"), pt.matrix("y", dtype="float64")
    indices = np.array([2, 2, 0])
    scattered = ScatterAddRows()(x, indices, y)
    f = pytensor.function([x, y], [scattered, scattered.shape], mode="FAST_COMPILE")
    xv, yv = np.arange(12.0).reshape(3, 4), np.ones((3, 4))
    expected = xv.copy()
    np.add.at(expected, indices, yv)
    value, shape = f(xv, yv)
    np.testing.assert_array_equal(value, expected)
    assert tuple(shape) == (3, 4)
    np.testing.assert_array_equal(xv, np.arange(12.0).reshape(3, 4))  # its input untouched
    with pytest.raises(TypeError, match="x's dtype"):
        ScatterAddRows()(x, indices, pt.matrix("y32", dtype="float32"))
