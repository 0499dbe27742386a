"""Convolution and max-pooling from ops that are fast in every backend (NUMBA, C, JAX) and jit-friendly.

PyTensor 3 has no ``nnet.conv2d`` or pooling op, and its ``signal.convolve2d`` is slow and
does not run under JAX. Here a convolution is an im2col *gather* with constant indices
(one ``AdvancedSubtensor1`` on the first axis, whose gradient is a scatter-add) followed by
one matrix product; max-pooling is a reshape and a ``max`` over the two pool axes.

Layout: between layers, activations are kept **batch-last**, ``(channels * height * width, batch)``
as flat rows in ``(channel, row, column)`` order, so that the gather indexes the first axis; inside
a layer the product is ``columns (rows*cols*batch, channels*kh*kw) @ W.T``, pooled as
``(rows, cols, batch, kernels)``. Flattening the last stage gives the tutorial's
``output.flatten(2)`` order (kernel, row, column).

As Theano's ``conv2d`` in the tutorial, the convolution is a *true* convolution (the kernel
flipped), not a cross-correlation: the flip is built into the gather indices, at no cost.
PyTorch's ``conv2d`` is a cross-correlation: ``conv2d(x, W.flip(2, 3))`` equals this.
"""
from __future__ import annotations

import numpy as np
import pytensor.tensor as pt


def output_size(image_shape: tuple[int, int, int], filter_size: tuple[int, int]) -> tuple[int, int]:
    """Height and width of a valid convolution's output."""
    return image_shape[1] - filter_size[0] + 1, image_shape[2] - filter_size[1] + 1


def im2col_indices(image_shape: tuple[int, int, int], filter_size: tuple[int, int]) -> np.ndarray:
    """Flat indices into a ``(channels, height, width)`` image, of shape ``(out_h*out_w, channels*kh*kw)``:
    row ``(y, x)`` holds the patch under output pixel ``(y, x)``, the kernel flipped (true convolution),
    in the order of ``W.reshape(kernels, channels*kh*kw)``."""
    channels, height, width = image_shape
    kh, kw = filter_size
    out_h, out_w = output_size(image_shape, filter_size)
    y, x, c, i, j = np.ix_(range(out_h), range(out_w), range(channels), range(kh), range(kw))
    flat = (c * height + (y + kh - 1 - i)) * width + (x + kw - 1 - j)
    return flat.reshape(out_h * out_w, channels * kh * kw).astype(np.int64)


def batch_size(a):
    """The batch size of batch-last ``a``: static where the graph knows it (the JAX path needs
    constant shapes for its reshapes), else symbolic."""
    return a.type.shape[-1] if a.type.shape[-1] is not None else a.shape[-1]


def conv2d(a, W, filter_shape: tuple[int, int, int, int], image_shape: tuple[int, int, int]):
    """Valid true convolution of batch-last images ``a`` ``(channels*height*width, batch)`` with
    ``W`` of ``filter_shape`` ``(kernels, channels, kh, kw)``: ``(out_h, out_w, batch, kernels)``.

    The product is ``columns (out_h*out_w*batch, channels*kh*kw) @ W.T``, so that the gradient of
    ``W`` is ``columns.T @ grad``: OpenBLAS is an order of magnitude slower on the transposed
    ``grad.T @ columns`` that ``W @ columns`` would lead to (a small output, a long sum), and so is
    ``W.reshape(kernels, -1).T``: PyTensor lifts that transpose through the gradient's product.
    """
    n_kernels, channels, kh, kw = filter_shape
    out_h, out_w = output_size(image_shape, (kh, kw))
    batch = batch_size(a)
    patches = a[im2col_indices(image_shape, (kh, kw)).ravel()]  # (out_h*out_w*channels*kh*kw, batch)
    columns = patches.reshape((out_h * out_w, channels * kh * kw, batch)).dimshuffle(0, 2, 1)
    columns = columns.reshape((out_h * out_w * batch, channels * kh * kw))
    kernels = W.dimshuffle(1, 2, 3, 0).reshape((channels * kh * kw, n_kernels))  # not W.reshape(...).T: see above
    return pt.dot(columns, kernels).reshape((out_h, out_w, batch, n_kernels))


def max_pool(z, poolsize: tuple[int, int], shape: tuple[int, int, int, int]):
    """Max over ``poolsize`` windows of ``z`` of ``shape`` ``(height, width, batch, channels)``;
    a border that does not fill a window is ignored (``ignore_border=True``)."""
    height, width = shape[:2]
    ph, pw = poolsize
    out_h, out_w = height // ph, width // pw
    z = z[:out_h * ph, :out_w * pw]
    return z.reshape((out_h, ph, out_w, pw, *shape[2:])).max(axis=(1, 3))


def conv_pool_layer(a, W, b, filter_shape, image_shape, poolsize, activation=pt.tanh):
    """The tutorial's LeNetConvPoolLayer on batch-last ``a``: ``activation(max_pool(conv2d(a, W)) + b)``,
    ``b`` one per kernel; returns the flat batch-last output ``(kernels*pooled_h*pooled_w, batch)``."""
    out_h, out_w = output_size(image_shape, filter_shape[2:])
    batch = batch_size(a)
    pooled = max_pool(conv2d(a, W, filter_shape, image_shape), poolsize, (out_h, out_w, batch, filter_shape[0]))
    out = activation(pooled + b)  # (pooled_h, pooled_w, batch, kernels)
    n_out = filter_shape[0] * (out_h // poolsize[0]) * (out_w // poolsize[1])
    return out.dimshuffle(3, 0, 1, 2).reshape((n_out, batch))
