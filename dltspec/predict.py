"""Using a trained model: class probabilities of new inputs (``dltspec predict``).

Inputs are ``.npy`` arrays (one example of ``n_in`` values, or several: ``(n, n_in)`` or
``(n, height, width)``), already scaled as the data set's ``x``; or images (PNG, JPEG, anything
Pillow reads), turned grey, resized to the data set's image shape and scaled as its pixels
were (MNIST: ``value / 256``; digits: ``value / 255``; IDX: the block's ``scale``). MNIST digits are
light on dark: an image that is mostly light (dark ink on paper) is inverted, unless ``invert`` says otherwise.

Only the model's forward pass is compiled, from the same symbolic graph as training
(:func:`dltspec.backends.pytensor_backend.symbolic`); no data set is loaded.
"""
from __future__ import annotations

import io
import os
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dltspec.diagnostics import DltspecError
from dltspec.lang.spec import Spec
from dltspec.model import shapes
from dltspec.training.params import ParamsError, mismatch


def pixel_scale(block: dict) -> float:
    """How an image's 8-bit pixels become the data set's x; :class:`InputError` where that is not known."""
    from dltspec.data.kinds import KINDS

    scale = KINDS[block["kind"]].pixel_scale(block)
    if scale is None:
        raise InputError(f"how a {block['kind']} data set's x relates to pixels is not known: give .npy inputs "
                         "scaled as its x")
    if block.get("normalize", "none") != "none":
        raise InputError("the data set is standardized with statistics of its training split that are not "
                         "saved: give .npy inputs standardized as its x")
    return scale
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".pgm", ".pnm"}


class InputError(DltspecError):
    """An input that cannot be read or does not fit the model."""


@dataclass(frozen=True)
class Prediction:
    source: str  # the file, with ``[i]`` for the i-th example of an array
    label: int
    probability: float


def image_shape_of(spec: Spec, n_in: int) -> tuple[int, int, int]:
    """(channels, height, width) of one example: the spec's, else a square of ``n_in`` pixels."""
    shape = shapes.image_shape(spec.data)
    if shape is not None:
        return tuple(shape)
    side = int(round(n_in ** 0.5))
    if side * side != n_in:
        raise InputError(f"the model takes {n_in} values, not a square image: declare classifier.image_shape")
    return (1, side, side)


#: the most pixels an input image may have (a 20000×20000 PNG is 400 million: refused before it is decoded)
MAX_IMAGE_PIXELS = 50_000_000
#: the largest input image file read (its bytes are read whole, so that a chunk whose header claims more bytes
#: than the file holds allocates only what is there: from the open file Pillow allocated 50 MB for a 71-byte PNG)
MAX_IMAGE_BYTES = 32 << 20


def image_bytes(path: Path) -> bytes:
    """The bytes of an input image file, refused above :data:`MAX_IMAGE_BYTES`."""
    with open(path, "rb") as file:
        size = os.fstat(file.fileno()).st_size
        data = b"" if size > MAX_IMAGE_BYTES else file.read(size + 1)  # one byte more: a file that grew
    if size > MAX_IMAGE_BYTES or len(data) > MAX_IMAGE_BYTES:
        raise InputError(f"{path} is larger than the {MAX_IMAGE_BYTES >> 20} MiB an input image may be")
    return data


def image_examples(path: Path, shape: tuple[int, int, int], scale: float, invert: str) -> np.ndarray:
    """One example from an image file: grey, resized to ``shape``, scaled, inverted as asked."""
    try:
        from PIL import Image, UnidentifiedImageError
    except ImportError:
        raise InputError("reading images needs Pillow: pip install 'dltspec[plot]'") from None
    if shape[0] != 1:
        raise InputError(f"the model takes {shape[0]}-channel images; only grey images are supported")
    import warnings

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)  # a bomb is refused, not half-read
            with Image.open(io.BytesIO(image_bytes(path))) as image:
                if image.width * image.height > MAX_IMAGE_PIXELS:
                    raise InputError(f"{path} is {image.width}×{image.height} pixels: more than the "
                                     f"{MAX_IMAGE_PIXELS:,} an input image may have")
                image.draft("L", (shape[2], shape[1]))  # JPEG: decode at the size needed
                grey = image.convert("L").resize((shape[2], shape[1]), Image.Resampling.LANCZOS)
    except (OSError, UnidentifiedImageError, Image.DecompressionBombError, Image.DecompressionBombWarning,
            SyntaxError, ValueError, EOFError, struct.error, zlib.error) as exc:  # Pillow's ways to say "damaged"
        raise InputError(f"cannot read {path} as an image: {exc}") from None
    pixels = np.asarray(grey, dtype=np.float64)
    if invert == "yes" or (invert == "auto" and pixels.mean() > 127.5):
        pixels = 255 - pixels
    return (pixels * scale).astype(np.float32).reshape(1, -1)


def array_examples(path: Path, n_in: int) -> np.ndarray:
    """Examples from a ``.npy`` file, as rows of ``n_in`` values."""
    from dltspec.data import npy

    try:
        array = npy.load(path)
    except npy.NpyError as exc:
        raise InputError(f"cannot read {path} as a .npy array: {exc}") from None
    except OSError as exc:
        raise InputError(f"cannot read {path} as a .npy array: {exc.strerror or exc}") from None
    if array.dtype.kind not in "fiu":
        raise InputError(f"{path} holds {array.dtype} values, not numbers")
    from dltspec.data.checks import all_finite, float32_range

    flat = array.reshape(-1, 1) if array.ndim < 2 else array
    if not all_finite(flat):
        raise InputError(f"{path} contains NaN or infinite values")
    if not float32_range(flat):
        raise InputError(f"{path} holds values beyond float32's range (|x| > {np.finfo(np.float32).max:.4g}): "
                         "they would become infinite when cast")
    if array.size == n_in:
        return array.reshape(1, n_in).astype(np.float32)
    if array.ndim >= 2 and int(np.prod(array.shape[1:])) == n_in:
        return array.reshape(len(array), n_in).astype(np.float32)
    raise InputError(f"{path} has shape {array.shape}; the model takes examples of {n_in} values "
                     f"(one example, or an array of shape (n, {n_in}))")


def examples(path: Path, spec: Spec, n_in: int, invert: str = "auto") -> np.ndarray:
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    if path.suffix.lower() == ".npy":
        return array_examples(path, n_in)
    if path.suffix.lower() in IMAGE_SUFFIXES:
        return image_examples(path, image_shape_of(spec, n_in), pixel_scale(spec.block("dataset")), invert)
    raise InputError(f"{path}: expected a .npy array or an image ({', '.join(sorted(IMAGE_SUFFIXES))})")


def n_in_of(spec: Spec, params: dict[str, np.ndarray]) -> int:
    """Input size: the spec's, else the first layer's parameters'."""
    n_in = shapes.n_in_of(spec.data)
    if n_in is not None:
        return n_in
    first = shapes.network(spec.data).params()[0].name  # a dense stack's first W: (n_in, units)
    return int(params[first].shape[0]) if first in params and params[first].ndim else 0


def n_out_of(spec: Spec, params: dict[str, np.ndarray]) -> int:
    """Output size: the last layer's parameters' (its bias, one per class), else the spec's."""
    last = shapes.network(spec.data).params()[-1].name
    if last in params and params[last].ndim:
        return int(params[last].shape[0])
    return shapes.n_out_of(spec.data) or 2


def probabilities_function(spec: Spec, params: dict[str, np.ndarray], backend: str,
                           floatX: str = "float32") -> Callable[[np.ndarray], np.ndarray]:
    """``f(x)``: P(y | x) for the rows of ``x`` (``batch_size`` at a time, padded) with ``params``;
    :class:`dltspec.training.params.ParamsError` (DLT502) if they do not fit the spec's model."""
    import pytensor
    import pytensor.tensor as pt

    from dltspec.backends.devices import device
    from dltspec.backends.pytensor_backend import BACKENDS, scratch_tempdir
    from dltspec.model import conv
    from dltspec.model.graph import symbolic

    batch_size = spec.block("optimizer")["batch_size"]
    n_in, n_out = n_in_of(spec, params), n_out_of(spec, params)
    form = conv.jax_form(device(None).platform == "cpu") if backend == "jax" else "pixel-major"  # as trace builds
    with pytensor.config.change_flags(floatX=floatX), scratch_tempdir(), conv.form(form):
        x = pt.tensor("x", shape=(batch_size, n_in), dtype=floatX)
        graph = symbolic(spec, n_in, n_out, x, pt.ivector("y"))
        shared = [p for _, p in graph.model.params]
        expected = {name: p.get_value().shape for name, p in graph.model.params}
        problem = mismatch(expected, params)
        if problem:
            raise ParamsError("DLT502", f"the parameters do not fit this spec's model: {problem}")
        if backend == "jax":
            import jax

            from dltspec.backends.jax_backend import jax_function

            forward = jax.jit(jax_function(shared + [x], [graph.model.evaluated]))
            values = [np.asarray(params[name], dtype=floatX) for name, _ in graph.model.params]
            batch = lambda rows: np.asarray(forward(*values, rows)[0])  # noqa: E731
        else:
            for name, p in graph.model.params:
                p.set_value(np.asarray(params[name], dtype=floatX))
            batch = pytensor.function([x], graph.model.evaluated, mode=BACKENDS[backend]())

    def probabilities(rows: np.ndarray) -> np.ndarray:
        out = []
        for start in range(0, len(rows), batch_size):
            chunk = rows[start:start + batch_size].astype(floatX)
            padded = np.zeros((batch_size, n_in), dtype=floatX)
            padded[:len(chunk)] = chunk
            out.append(batch(padded)[:len(chunk)])
        return np.concatenate(out) if out else np.zeros((0, n_out))

    return probabilities


def predictions(source: str, rows: np.ndarray, probabilities: np.ndarray) -> list[Prediction]:
    labels = probabilities.argmax(axis=1)
    return [Prediction(source if len(rows) == 1 else f"{source}[{i}]", int(k), float(probabilities[i, k]))
            for i, k in enumerate(labels)]
