"""Layouts for the JAX path on the CPU: the data layout and the graph rewrites that make XLA's CPU fast.

Three rewrites, each on the graph PyTensor's JAX mode has rewritten (``jax_backend.jax_function``): products
with the minibatch batch-last (:func:`flip_products`, below), products with a small output and a long sum
(:func:`transpose_long_sums`) and scatters of whole rows (:func:`row_scatters`). Each computes the same
values, summed in another order at most.

Batch-last minibatches. A logistic regression's step is two products with the minibatch: ``x @ W``
(600 x 784 by 784 x 10) and ``x.T @ delta``. XLA on the CPU runs a product whose output is narrow
(10 columns) far below the machine's rate; the same numbers as ``W.T @ xT`` (10 x 784 by 784 x 600: the
output 600 wide) run much faster. So where it pays, each minibatch is kept on the device *batch-last*, ``xT`` of shape
``(n_in, batch_size)``, the graph reads ``x = xT.T``, and the first layer's product is computed as
``(W.T @ xT).T``; the gradient's product becomes ``xT @ delta``, which reads ``xT`` as it lies.
Measured on MNIST, 2 cores, one dispatch per epoch, both layouts in one process taking turns
(``bench/cpu_epoch.py`` reports the epochs against other implementations): logistic/600 0.66x the
time of the batch-first layout, logistic/20 0.86x; the MLP (a first layer 500 wide on minibatches
of 20) 1.14x, so it keeps the batch-first layout; LeNet's times were equal (its convolutions read
the input batch-last already), and it keeps the batch-first layout too.

The host copy into that layout is :func:`dltspec.data.stream.batch_last` (it needs no PyTensor: a program
read from the compile cache uses it without building the graph).

The rule (:func:`pays`), on the model's output: the minibatch is used only by products ``x @ W``
whose output is narrower than the minibatch. The product's value is the same;
only XLA's order of summation may differ, by rounding (the decisions of the tutorial's runs are the
same, see ``tests/test_layout.py``).
"""
from __future__ import annotations

import numpy as np
import pytensor.tensor as pt
from pytensor.graph.basic import Apply, Constant
from pytensor.graph.op import Op
from pytensor.graph.rewriting.basic import in2out, node_rewriter
from pytensor.graph.traversal import io_toposort
from pytensor.link.jax.dispatch import jax_funcify
from pytensor.tensor.elemwise import DimShuffle
from pytensor.tensor.math import Dot
from pytensor.tensor.subtensor import AdvancedIncSubtensor1
from pytensor.tensor.type import integer_dtypes


def is_transpose(variable, of) -> bool:
    """Whether ``variable`` is ``of.T`` (a matrix transposed by a ``DimShuffle``)."""
    node = variable.owner
    return (node is not None and isinstance(node.op, DimShuffle) and node.op.new_order == (1, 0)
            and node.inputs[0] is of)


def columns(W) -> int | None:
    """The number of columns of the matrix ``W``: its static shape's, or a shared variable's value's."""
    if W.ndim != 2:
        return None
    if W.type.shape[1] is not None:
        return W.type.shape[1]
    return W.get_value(borrow=True).shape[1] if hasattr(W, "get_value") else None


def pays(x, output) -> bool:
    """Whether the minibatch ``x`` ``(batch_size, n_in)`` should lie batch-last for ``output`` (the
    model's forward output): every use of ``x`` is a product ``x @ W`` with fewer columns than ``x``
    has rows."""
    uses = [node for node in io_toposort([x], [output]) if any(i is x for i in node.inputs)]
    return bool(uses) and all(isinstance(node.op, Dot) and node.inputs[0] is x
                              and (columns(node.inputs[1]) or 0) in range(1, x.type.shape[0]) for node in uses)


class Barrier(Op):
    """The identity, which XLA may not look through (``lax.optimization_barrier``): without it XLA folds
    ``(W.T @ xT).T`` back into a product with a narrow output."""

    __props__ = ()

    def make_node(self, x):
        return Apply(self, [x], [x.type()])

    def perform(self, node, inputs, outputs):
        outputs[0][0] = inputs[0]


@jax_funcify.register(Barrier)
def jax_funcify_Barrier(op, **kwargs):
    from jax import lax

    return lax.optimization_barrier


def flip_products(fgraph, xT) -> None:
    """Rewrite every ``dot(xT.T, W)`` in ``fgraph`` as ``barrier(dot(W.T, xT)).T``, in place."""

    @node_rewriter([Dot])
    def flipped(fgraph, node):
        a, W = node.inputs
        if is_transpose(a, xT) and W.ndim == 2:
            return [Barrier()(node.op(W.T, xT)).T]
        return None

    in2out(flipped, ignore_newtrees=True).rewrite(fgraph)


LONG_SUM, SMALL_OUTPUT = 65_536, 2_048  # where XLA's CPU runs dot(g, X.T) slowly: see transpose_long_sums


def small_long_sum(node) -> bool:
    """Whether the product ``node`` (static shapes ``(m, k) @ (k, n)``) has a small output (at most
    ``SMALL_OUTPUT`` entries) and a long sum (at least ``LONG_SUM`` terms)."""
    (m, k), (_, n) = node.inputs[0].type.shape, node.inputs[1].type.shape
    return None not in (m, k, n) and m * n <= SMALL_OUTPUT and k >= LONG_SUM


def transpose_long_sums(fgraph) -> None:
    """Rewrite every ``dot(g, X.T)`` with a small output and a long sum (:func:`small_long_sum`) in ``fgraph``
    as ``dot(barrier(g.T).T, X.T)``, in place: the same product, summed in another order. Run it once on a
    graph (a second pass would wrap every match again).

    A kernel-major convolution's weight gradient is such a product: for LeNet's first layer,
    ``(20, 288000) @ (288000, 25)``. XLA's CPU hands ``dot(g, X.T)`` to YNNPACK, which runs it on one
    thread at a small fraction of the machine's rate; with ``g.T`` written out first (the barrier keeps XLA
    from folding the transpose back into the product) it goes to Eigen, which splits the sum over the
    threads. On 2 cores, in a standalone script (``jax 0.10``), milliseconds for ``dot`` and the rewritten
    form: 28.6 and 11.1 for (20, 288000, 25), 56.1 and 19.5 for (20, 288000, 75), 6.1 and 4.4 for
    (20, 100000, 25); where the output is larger or the sum shorter, the rewrite is slower: 0.7 and 1.7 for
    (20, 28800, 25), 15.5 and 20.6 for (64, 100000, 64), 14.9 and 28.7 for LeNet's second layer (50, 32000,
    500).
    """

    @node_rewriter([Dot])
    def transposed(fgraph, node):
        g, Xt = node.inputs
        if g.ndim == 2 and Xt.ndim == 2 and Xt.owner is not None and isinstance(Xt.owner.op, DimShuffle) \
                and Xt.owner.op.new_order == (1, 0) and small_long_sum(node):
            return [node.op(Barrier()(g.T).T, Xt)]
        return None

    in2out(transposed, ignore_newtrees=True).rewrite(fgraph)


class ScatterAddRows(Op):
    """``x`` with row ``y[k]`` added to row ``indices[k]`` of ``x`` for every ``k`` (``x[indices] += y``, repeated
    indices summed), for indices within ``range(len(x))`` and ``y`` of ``x``'s dtype and of shape
    ``(len(indices), *x.shape[1:])``: on the JAX path, a scatter whose updates XLA's CPU reads as they lie
    (:func:`row_scatters`)."""

    __props__ = ()

    def make_node(self, x, indices, y):
        x, indices, y = (pt.as_tensor_variable(v) for v in (x, indices, y))
        if indices.ndim != 1 or indices.dtype not in integer_dtypes:
            raise TypeError(f"ScatterAddRows: indices must be a vector of integers, got {indices.type}")
        if y.dtype != x.dtype or y.ndim != x.ndim:
            raise TypeError(f"ScatterAddRows: y must be of x's dtype and rank ({x.type}), got {y.type}")
        return Apply(self, [x, indices, y], [x.type()])

    def perform(self, node, inputs, outputs):
        x, indices, y = inputs
        out = x.copy()
        np.add.at(out, indices, y)
        outputs[0][0] = out

    def infer_shape(self, fgraph, node, shapes):
        return [shapes[0]]


@jax_funcify.register(ScatterAddRows)
def jax_funcify_ScatterAddRows(op, **kwargs):
    """``lax.scatter_add`` of updates ``(n, 1, *row)``, every axis a window axis: the form XLA's CPU reads in
    place (``x.at[indices].add(y)`` inserts the indexed axis, which XLA's CPU then copies the updates to
    make). The indices are checked in bounds where the node is made (:func:`rows_within`)."""
    from jax import lax

    def scatter_add_rows(x, indices, y):
        numbers = lax.ScatterDimensionNumbers(update_window_dims=tuple(range(1, x.ndim + 1)), inserted_window_dims=(),
                                              scatter_dims_to_operand_dims=(0,))
        return lax.scatter_add(x, indices[:, None], y.reshape((y.shape[0], 1, *y.shape[1:])), numbers,
                               mode=lax.GatherScatterMode.PROMISE_IN_BOUNDS)

    return scatter_add_rows


def rows_within(node) -> bool:
    """Whether the ``AdvancedIncSubtensor1`` ``node`` (``x[indices] += y``) adds whole rows at constant indices
    within ``x``: static shapes, ``y`` of ``x``'s dtype and of shape ``(len(indices), *x.shape[1:])`` (no
    broadcasting), at least one index."""
    x, y, indices = node.inputs
    if node.op.set_instead_of_inc or not isinstance(indices, Constant) or None in x.type.shape \
            or y.type.dtype != x.type.dtype:
        return False
    data = np.asarray(indices.data)
    return (data.ndim == 1 and data.size > 0 and y.type.shape == (len(data), *x.type.shape[1:])
            and 0 <= int(data.min()) and int(data.max()) < x.type.shape[0])


def row_scatters(fgraph) -> None:
    """Rewrite every ``x[indices] += y`` of whole rows at constant indices (:func:`rows_within`) in ``fgraph`` as
    :class:`ScatterAddRows`, in place: the same sums.

    A convolution's input gradient is such a scatter (col2im: ``columns`` ``(c*kh*kw*pixels, batch)`` added
    to the rows of the image they were gathered from). PyTensor's JAX dispatch writes it ``x.at[indices].add(y)``;
    XLA's CPU then gives the scatter its updates as ``(n, 1, batch)`` in a layout it does not see to be the
    same memory and copies them first: for LeNet's second layer 64 MB a step, 5 ms of a step of about 90
    (a ``jax.profiler`` trace of the training dispatch, XLA's thunks by name), and a buffer of 64 MB whose
    pages are fresh at every dispatch. The scatter here takes updates of that shape from the start, so that
    the product writing them is read in place: the training dispatch of 10 minibatches 0.89 s before, 0.80 s
    after (``bench/RESULTS.md``).
    """

    @node_rewriter([AdvancedIncSubtensor1])
    def rows(fgraph, node):
        if rows_within(node):
            x, y, indices = node.inputs
            return [ScatterAddRows()(x, indices, y)]
        return None

    in2out(rows, ignore_newtrees=True).rewrite(fgraph)
