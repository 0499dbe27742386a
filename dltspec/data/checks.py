"""A data set's arrays checked in their own types before any cast: what every loader's splits go through.

Labels are judged in their source dtype (a uint64 above 2**63 would wrap negative once cast to int64,
a float label would be truncated), features for finiteness and for float32's range (a float64 beyond it
would become infinite once cast); a problem is a :class:`DataError` that names the key it concerns.
"""
from __future__ import annotations

import math

import numpy as np

from dltspec.diagnostics import DltspecError


class DataError(DltspecError):
    """A problem with a data set, reported at ``dataset.<key>`` (or the block)."""

    def __init__(self, code: str, message: str, key: str | None = None, notes: tuple[str, ...] = ()):
        super().__init__(message)
        self.code, self.key, self.notes = code, key, notes


def checked_split(split: str, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if x.dtype.kind not in "biuf" or y.dtype.kind not in "biuf":
        raise DataError("DLT402", f"the {split} split must hold numbers, got x of {x.dtype} and y of {y.dtype}",
                        "path")
    if x.ndim != 2 or x.shape[1] < 1:
        raise DataError("DLT402", f"{split} x must have shape (examples, features), got {x.shape}", "path")
    if y.ndim != 1 or len(y) != len(x):
        raise DataError("DLT402", f"{split} y must have one label per example: x has {len(x)} rows, "
                        f"y has shape {y.shape}", "path")
    if not all_finite(x):
        raise DataError("DLT402", f"{split} x contains NaN or infinite values", "path")
    if not float32_range(x):
        raise DataError("DLT402", f"{split} x holds values beyond float32's range (|x| > "
                        f"{np.finfo(np.float32).max:.4g}): they would become infinite when cast", "path")
    label_problem = labels_problem(y)
    if label_problem:
        raise DataError("DLT402", f"{split} labels must be integers from 0 to {MAX_LABEL}: {label_problem}", "path")
    return x.astype(np.float32, copy=False), y.astype(np.int64, copy=False)


#: the largest label: labels are int32 in the graph, and n_out is the largest label plus one
MAX_LABEL = 2 ** 31 - 2


def labels_problem(y: np.ndarray) -> str | None:
    """What is wrong with labels ``y``, judged in their own dtype before any cast (a uint64 above 2**63
    would wrap negative, a float label would be truncated), or ``None``."""
    if not y.size:  # no labels (a shape such as (1, 0) has a length but no labels either)
        return None
    if y.dtype.kind == "f":
        if not np.isfinite(y).all():
            return "some are NaN or infinite"
        if not np.equal(np.mod(y, 1), 0).all():
            bad = y[np.not_equal(np.mod(y, 1), 0)][0]
            return f"{bad.item()!r} is not a whole number"
    low, high = y.min(), y.max()
    if low < 0:
        return f"{low} is negative"
    if high > MAX_LABEL:
        return f"{high} is too large"
    return None


def float32_range(x: np.ndarray, rows_at_once: int = 1 << 14) -> bool:
    """Whether every value of a wider float ``x`` is within float32's range (finite once cast)."""
    from dltspec.data.stream import row_blocks

    if x.dtype.kind != "f" or x.dtype.itemsize <= 4:
        return True
    limit = np.finfo(np.float32).max
    return all(np.abs(block).max(initial=0) <= limit for block in row_blocks(x, rows_at_once))


def all_finite(x: np.ndarray, rows_at_once: int = 1 << 14) -> bool:
    """Whether every value of ``x`` is finite, looked at by blocks of rows (:func:`dltspec.data.stream.row_blocks`)."""
    from dltspec.data.stream import row_blocks

    return x.dtype.kind != "f" or all(np.isfinite(block).all() for block in row_blocks(x, rows_at_once))


def rows(x: np.ndarray) -> np.ndarray:
    """``x`` as (examples, features): images (n, h, w) flattened, a view where possible (sizes given: an
    array with no elements has no -1 to infer)."""
    return x.reshape(len(x), math.prod(x.shape[1:])) if x.ndim != 2 else x
