"""Convolution and max-pooling from ops that are fast in every backend (NUMBA, C, JAX) and jit-friendly.

PyTensor 3 has no ``nnet.conv2d`` or pooling op, and its ``signal.convolve2d`` is slow and
does not run under JAX. Here a convolution is an im2col *gather* with constant indices
(one ``AdvancedSubtensor1`` on the first axis, whose gradient is a scatter-add) followed by
one matrix product; max-pooling is a reshape and a ``max`` over the two pool axes.

Layout: between layers, activations are kept **batch-last**, ``(channels * height * width, batch)``
as flat rows in ``(channel, row, column)`` order, so that the gather indexes the first axis. Inside a
layer the product takes one of two forms (:data:`FORMS`), the same numbers in another order:

- ``pixel-major`` (the default): ``columns (rows*cols*batch, channels*kh*kw) @ W.T``, pooled as
  ``(rows, cols, batch, kernels)``; the gradient of ``W`` is ``columns.T @ grad``, which OpenBLAS
  (PyTensor's C and Numba backends) runs fast.
- ``kernel-major``: ``W (kernels, channels*kh*kw) @ columns (channels*kh*kw, rows*cols*batch)``, pooled
  as ``(kernels, rows, cols, batch)``. The gather writes ``columns`` as it lies and the output is already
  in the next layer's order, so neither needs a transpose; the JAX path on the CPU builds this form
  (:func:`form`), whose forward pass XLA runs 1.4x as fast (``bench/lenet_step.py``).

Flattening the last stage gives the tutorial's ``output.flatten(2)`` order (kernel, row, column).

As Theano's ``conv2d`` in the tutorial, the convolution is a *true* convolution (the kernel
flipped), not a cross-correlation: the flip is built into the gather indices, at no cost.
PyTorch's ``conv2d`` is a cross-correlation: ``conv2d(x, W.flip(2, 3))`` equals this.
"""
from __future__ import annotations

import contextlib
import contextvars

import numpy as np
import pytensor.tensor as pt

FORMS = ("pixel-major", "kernel-major")
FORM = contextvars.ContextVar("dltspec_conv_form", default="pixel-major")  # the form graphs are built in


def checked(name: str) -> str:
    """``name``, one of :data:`FORMS`; a ``ValueError`` naming them otherwise."""
    if name not in FORMS:
        raise ValueError(f"unknown convolution form {name!r}; expected one of {', '.join(FORMS)}")
    return name


def jax_form(cpu: bool) -> str:
    """The form the JAX path builds: kernel-major on XLA's CPU, whose products it makes fast
    (``bench/RESULTS.md``); pixel-major on a GPU (the kernel-major form not measured there)."""
    return "kernel-major" if cpu else "pixel-major"


@contextlib.contextmanager
def form(name: str):
    """Build every convolution in ``name``'s form (one of :data:`FORMS`) inside the ``with`` block."""
    token = FORM.set(checked(name))
    try:
        yield
    finally:
        FORM.reset(token)


def pads(pad) -> tuple[int, int]:
    """``pad`` (zeros on each side) as (rows, columns)."""
    return tuple(pad) if isinstance(pad, (list, tuple)) else (pad, pad)


def output_size(image_shape: tuple[int, int, int], filter_size: tuple[int, int], stride: int = 1,
                pad=0) -> tuple[int, int]:
    """Height and width of a convolution's output: ``(size + 2 * pad - k) // stride + 1`` (``pad`` zeros on
    each side: one number, or (rows, columns))."""
    return tuple((image_shape[1 + d] + 2 * pads(pad)[d] - filter_size[d]) // stride + 1 for d in (0, 1))


def im2col_indices(image_shape: tuple[int, int, int], filter_size: tuple[int, int], stride: int = 1,
                   pad=0, kernel_major: bool = False) -> np.ndarray:
    """Flat indices into a ``(channels, height, width)`` image, of shape ``(out_h*out_w, channels*kh*kw)``:
    row ``(y, x)`` holds the patch under output pixel ``(y, x)``, the kernel flipped (true convolution),
    in the order of ``W.reshape(kernels, channels*kh*kw)``; ``kernel_major``: the transpose,
    ``(channels*kh*kw, out_h*out_w)``. A patch pixel in the padding indexes ``channels * height * width``:
    one zero row appended to the image (:func:`conv2d`)."""
    channels, height, width = image_shape
    kh, kw = filter_size
    out_h, out_w = output_size(image_shape, filter_size, stride, pad)
    ph, pw = pads(pad)
    y, x, c, i, j = np.ix_(range(out_h), range(out_w), range(channels), range(kh), range(kw))
    row, col = y * stride + (kh - 1 - i) - ph, x * stride + (kw - 1 - j) - pw
    inside = (row >= 0) & (row < height) & (col >= 0) & (col < width)
    flat = np.where(inside, (c * height + row) * width + col, channels * height * width)
    flat = flat.reshape(out_h * out_w, channels * kh * kw)
    return (flat.T if kernel_major else flat).astype(np.int64)


def pool_indices(image_shape: tuple[int, int, int], size: int, stride: int) -> np.ndarray:
    """Flat indices into a ``(channels, height, width)`` image, of shape ``(channels*out_h*out_w, size*size)``:
    the window of each pooled pixel (``out = (n - size) // stride + 1``: a border that fills no window is
    ignored, as ``ignore_border=True``)."""
    channels, height, width = image_shape
    out_h, out_w = (height - size) // stride + 1, (width - size) // stride + 1
    c, y, x, i, j = np.ix_(range(channels), range(out_h), range(out_w), range(size), range(size))
    flat = (c * height + y * stride + i) * width + x * stride + j
    return flat.reshape(channels * out_h * out_w, size * size).astype(np.int64)


def pool2d(a, image_shape: tuple[int, int, int], size: int, stride: int, mode: str = "max"):
    """Max- or mean-pooling of batch-last images ``a`` ``(channels*height*width, batch)`` over ``size x size``
    windows ``stride`` apart: the flat batch-last ``(channels*out_h*out_w, batch)``."""
    indices = pool_indices(image_shape, size, stride)
    windows = a[indices.ravel()].reshape((indices.shape[0], size * size, batch_size(a)))
    return windows.max(axis=1) if mode == "max" else windows.mean(axis=1)


def batch_size(a):
    """The batch size of batch-last ``a``: static where the graph knows it (the JAX path needs
    constant shapes for its reshapes), else symbolic."""
    return a.type.shape[-1] if a.type.shape[-1] is not None else a.shape[-1]


def conv2d(a, W, filter_shape: tuple[int, int, int, int], image_shape: tuple[int, int, int], stride: int = 1,
           pad=0, kernel_major: bool = False):
    """Valid true convolution of batch-last images ``a`` ``(channels*height*width, batch)`` with
    ``W`` of ``filter_shape`` ``(kernels, channels, kh, kw)``: ``(out_h, out_w, batch, kernels)``, or
    ``kernel_major`` ``(kernels, out_h, out_w, batch)``.

    Pixel-major, the product is ``columns (out_h*out_w*batch, channels*kh*kw) @ W.T``, so that the gradient
    of ``W`` is ``columns.T @ grad``: OpenBLAS is an order of magnitude slower on the transposed
    ``grad.T @ columns`` that ``W @ columns`` would lead to (a small output, a long sum), and so is
    ``W.reshape(kernels, -1).T``: PyTensor lifts that transpose through the gradient's product.
    Kernel-major, it is ``W.reshape(kernels, -1) @ columns``: XLA's fast form (see the module's text).
    """
    n_kernels, channels, kh, kw = filter_shape
    out_h, out_w = output_size(image_shape, (kh, kw), stride, pad)
    batch, window = batch_size(a), channels * kh * kw
    if any(pads(pad)):  # the padding's pixels index one row of zeros after the image
        a = pt.concatenate([a, pt.zeros_like(a[:1])], axis=0)
    indices = im2col_indices(image_shape, (kh, kw), stride, pad, kernel_major).ravel()
    if kernel_major:  # the gather's rows (c*kh*kw, out_h*out_w) of batch-last images: columns as they lie
        columns = a[indices].reshape((window, out_h * out_w * batch))
        return pt.dot(W.reshape((n_kernels, window)), columns).reshape((n_kernels, out_h, out_w, batch))
    patches = a[indices]  # (out_h*out_w*c*kh*kw, batch)
    columns = patches.reshape((out_h * out_w, window, batch)).dimshuffle(0, 2, 1)
    columns = columns.reshape((out_h * out_w * batch, window))
    kernels = W.dimshuffle(1, 2, 3, 0).reshape((window, n_kernels))  # not W.reshape(...).T: see above
    return pt.dot(columns, kernels).reshape((out_h, out_w, batch, n_kernels))


def max_pool(z, poolsize: tuple[int, int], shape: tuple[int, ...], mode: str = "max", first: int = 0):
    """Max (or mean) over ``poolsize`` windows of ``z`` of ``shape``, whose image rows and columns are axes
    ``first`` and ``first + 1`` (``(height, width, batch, channels)``: 0; ``(channels, height, width,
    batch)``: 1); a border that does not fill a window is ignored (``ignore_border=True``)."""
    height, width = shape[first:first + 2]
    ph, pw = poolsize
    out_h, out_w = height // ph, width // pw
    z = z[(slice(None),) * first + (slice(0, out_h * ph), slice(0, out_w * pw))]
    z = z.reshape((*shape[:first], out_h, ph, out_w, pw, *shape[first + 2:]))
    axes = (first + 1, first + 3)
    return z.max(axis=axes) if mode == "max" else z.mean(axis=axes)


def conv_pool_layer(a, W, b, filter_shape, image_shape, poolsize, activation=pt.tanh, stride: int = 1,
                    pad=0, pool_mode: str = "max", form_name: str | None = None):
    """The tutorial's LeNetConvPoolLayer on batch-last ``a``: ``activation(max_pool(conv2d(a, W)) + b)``,
    ``b`` one per kernel; returns the flat batch-last output ``(kernels*pooled_h*pooled_w, batch)``.
    ``form_name``: the product's form (:data:`FORMS`); by default the one :func:`form` set."""
    kernel_major = checked(form_name or FORM.get()) == "kernel-major"
    out_h, out_w = output_size(image_shape, filter_shape[2:], stride, pad)
    batch, n_kernels = batch_size(a), filter_shape[0]
    convolved = conv2d(a, W, filter_shape, image_shape, stride, pad, kernel_major)
    shape = (n_kernels, out_h, out_w, batch) if kernel_major else (out_h, out_w, batch, n_kernels)
    rows_axis = 1 if kernel_major else 0
    pooled = convolved if poolsize == (1, 1) else max_pool(convolved, poolsize, shape, pool_mode, rows_axis)
    n_out = n_kernels * (out_h // poolsize[0]) * (out_w // poolsize[1])
    if kernel_major:  # (kernels, pooled_h, pooled_w, batch): the next layer's order already
        return activation(pooled + b.dimshuffle(0, "x", "x", "x")).reshape((n_out, batch))
    out = activation(pooled + b)  # (pooled_h, pooled_w, batch, kernels)
    return out.dimshuffle(3, 0, 1, 2).reshape((n_out, batch))
