"""The jitted functions that drive a traced program on a JAX device: the training chunk and the evaluation passes.

Each takes the pure JAX functions :func:`dltspec.backends.jax_backend.jax_function` makes of the spec's
PyTensor graph and returns one ``jax.jit`` function (one dispatch a call): :func:`chunk_function` trains
a chunk of minibatches, :func:`errors_function` and :func:`grouped_errors_function` evaluate a split.
Nothing here imports jax until a function is made.
"""
from __future__ import annotations

from collections.abc import Callable

from dltspec.lang.spec import Spec


def float32_products():
    """Trace matrix products at full float32 precision: on recent GPUs JAX's default lets XLA use
    TF32 (10-bit mantissa), which changes the tutorial's figures; PyTensor and PyTorch do not."""
    import jax

    return jax.default_matmul_precision("highest")


def chunk_function(step: Callable) -> Callable:
    """``train_chunk(params, hyper, x, y, start, n_steps) -> (params, report)``, jitted: minibatches
    ``(start + i) % len(x)`` of ``x``, ``y`` (the whole split, or a chunk of it); ``report`` is
    ``[summed cost, offset of the first cost that is not finite (-1: none), last finite cost]``.

    Each step's cost is the tutorial's, penalties included, computed at the step's parameters. (Carrying the
    penalties' value from one step's update to the next step's cost, so that XLA sums the squares as the
    update writes the weights, was tried and removed: 6 % slower on an Intel Xeon, no faster in a paired
    run on an AMD EPYC; ``bench/RESULTS.md``.)
    """
    import jax
    import jax.numpy as jnp
    from jax import lax

    def train_chunk(params, hyper, x, y, start, n_steps):
        def body(i, carry):
            params, total, first_bad, last_finite = carry
            index = (start + i) % x.shape[0]
            *new, cost = step(*params, *hyper, lax.dynamic_index_in_dim(x, index, keepdims=False),
                              lax.dynamic_index_in_dim(y, index, keepdims=False))
            cost = cost.astype(total.dtype)
            finite = jnp.isfinite(cost)
            first_bad = jnp.where((first_bad < 0) & ~finite, i, first_bad)
            last_finite = jnp.where((first_bad < 0) & finite, cost, last_finite)
            return tuple(new), total + cost, first_bad, last_finite

        zero = jnp.zeros((), jnp.float64)
        with float32_products():
            params, total, first_bad, last_finite = lax.fori_loop(
                0, n_steps, body, (tuple(params), zero, jnp.full((), -1, start.dtype), zero + jnp.nan))
        return params, jnp.stack([total, first_bad.astype(jnp.float64), last_finite])

    return jax.jit(train_chunk)


def errors_function(errors: Callable) -> Callable:
    """``errors(params, x, y) -> zero-one loss of each minibatch``, jitted: one dispatch for the split,
    the minibatches one after the other (``lax.map``; a ``vmap`` held the whole split's intermediates at
    once: 1.3 GiB for LeNet's im2col on MNIST's validation split, against 67 MiB)."""
    import jax
    from jax import lax

    def per_minibatch(params, x, y):
        with float32_products():
            return lax.map(lambda batch: errors(*params, *batch)[0], (x, y))

    return jax.jit(per_minibatch)


#: rows of a product the evaluation passes aim at: minibatches smaller than this are evaluated together
EVAL_ROWS = 500


def eval_group(spec: Spec, batch_size: int, batch_last: bool) -> int:
    """How many minibatches an evaluation pass computes as one product (1: one at a time).

    XLA's products with 20 rows run far below those with 500: the MLP's validation pass took 71 ms at
    minibatches of 20 and 50 ms at 500 (10,000 examples, 2 cores). The zero-one loss of a minibatch is
    its own examples' mistakes, so minibatches evaluated together give the same figures wherever a row of
    the larger product rounds as it does alone (bit for bit on XLA's CPU, tested; on a GPU another kernel
    may be chosen for the larger product, and a near tie in the argmax could fall the other way). Batch-last
    programs (whose data lies ``(n_in, batch_size)``) and pre-training phases (whose evaluation is a
    reconstruction cost, not a count) evaluate one minibatch at a time.
    """
    if batch_last or spec.data.get("phase") is not None:
        return 1
    return max(1, EVAL_ROWS // batch_size)


def grouped_errors_function(mistakes: Callable, group: int) -> Callable:
    """``errors(params, x, y) -> mistakes of each minibatch`` (int32), jitted: one dispatch for the split,
    ``group`` minibatches at a time through ``mistakes(*params, x, y)`` (``x`` of ``group * batch_size``
    rows, one 0/1 per example). The last group starts ``group`` minibatches before the split's end (it
    overlaps the one before: no copy of the split); a split of fewer minibatches is padded."""
    import jax
    import jax.numpy as jnp
    from jax import lax

    def per_minibatch(params, x, y):
        n, batch = y.shape
        if n < group:
            x = jnp.concatenate([x, jnp.zeros((group - n, *x.shape[1:]), x.dtype)])
            y = jnp.concatenate([y, jnp.zeros((group - n, batch), y.dtype)])
        n_groups = -(-n // group)

        def body(g, counts):
            first = jnp.minimum(g * group, x.shape[0] - group)
            xs = lax.dynamic_slice_in_dim(x, first, group).reshape((group * batch, *x.shape[2:]))
            ys = lax.dynamic_slice_in_dim(y, first, group).reshape(group * batch)
            wrong = mistakes(*params, xs, ys)[0].reshape(group, batch).sum(axis=1, dtype=jnp.int32)
            return lax.dynamic_update_slice_in_dim(counts, wrong, first, axis=0)

        with float32_products():
            counts = lax.fori_loop(0, n_groups, body, jnp.zeros(x.shape[0], jnp.int32))
        return counts[:n]

    return jax.jit(per_minibatch)
