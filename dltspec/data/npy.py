"""``.npy`` arrays read only as far as their header is true: the size it declares is checked against the bytes
the file (or ``.npz`` member) holds before anything is allocated or mapped, so a damaged or hostile header is a
clear :class:`NpyError` naming the file, never a huge allocation, an overflow or numpy's own exception.
"""
from __future__ import annotations

import math
import os
import tokenize
from pathlib import Path

import numpy as np

from dltspec.diagnostics import DltspecError

try:
    from numpy.lib._format_impl import _read_array_header  # numpy 2
except ImportError:  # pragma: no cover - numpy 1
    from numpy.lib.format import _read_array_header


#: the kinds of numpy dtype a data set's arrays may hold: booleans, integers, unsigned, floats, complex
NUMBERS = "biufc"


class NpyError(DltspecError, ValueError):
    """Not an ``.npy`` array, or one whose header does not fit its data."""


def header(fp, size: int, name: str) -> tuple[tuple[int, ...], bool, np.dtype, int]:
    """``(shape, fortran_order, dtype, data bytes)`` of the ``.npy`` data at ``fp`` (``size`` bytes in all),
    ``fp`` left at its first element; :class:`NpyError` unless the header is readable, declares numbers (no
    Python objects) and needs no more bytes than there are."""
    try:
        version = np.lib.format.read_magic(fp)
        if version not in ((1, 0), (2, 0), (3, 0)):
            raise NpyError(f"{name}: unknown .npy format version {version[0]}.{version[1]}")
        shape, fortran, dtype = _read_array_header(fp, version)
    except NpyError:
        raise
    except (ValueError, TypeError, SyntaxError, tokenize.TokenError, OverflowError, MemoryError,
            RecursionError) as exc:  # what numpy's header parser (tokenize, then ast) raises
        raise NpyError(f"{name} is not a .npy array: {exc}") from None
    if not all(isinstance(side, int) and side >= 0 for side in shape):
        raise NpyError(f"{name} is not a .npy array: its header's shape {shape} is not of sizes 0 or more")
    if dtype.hasobject:
        raise NpyError(f"{name} holds Python objects ({dtype}), not numbers")
    if dtype.subdtype is not None:  # ('<f4', (2,)): numpy reads it as two more float32 per element
        dtype, shape = dtype.subdtype[0], tuple(shape) + dtype.subdtype[1]
    if dtype.kind not in NUMBERS:  # strings, records, dates; '|S0' is 0 bytes an element, and numpy allocates 1
        raise NpyError(f"{name} holds {dtype} values, not numbers")
    need = math.prod(shape) * dtype.itemsize
    have = size - fp.tell()
    if need > have:
        raise NpyError(f"{name}: its header declares {shape} of {dtype} ({need:,} bytes), but it holds "
                       f"{max(have, 0):,}")
    return shape, fortran, dtype, need


def mapped(path: Path) -> np.ndarray:
    """The ``.npy`` file at ``path``, memory-mapped read-only (an empty array is read instead: it cannot be
    mapped)."""
    with open(path, "rb") as f:
        shape, fortran, dtype, need = header(f, os.fstat(f.fileno()).st_size, str(path))
        if need == 0:
            return np.zeros(shape, dtype, order="F" if fortran else "C")
        offset = f.tell()
    return np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=shape, order="F" if fortran else "C")


def read(fp, size: int, name: str) -> np.ndarray:
    """The ``.npy`` array at ``fp`` (``size`` bytes in all: a file, or an ``.npz`` member), read in full."""
    shape, fortran, dtype, need = header(fp, size, name)
    data = fp.read(need)  # grows only as the data arrives: a member that inflates to less is caught here
    if len(data) < need:
        raise NpyError(f"{name}: its header declares {need:,} bytes of data, but it holds {len(data):,}")
    flat = np.frombuffer(data, dtype=dtype, count=math.prod(shape)) if need else np.zeros(math.prod(shape), dtype)
    return flat.reshape(shape, order="F" if fortran else "C")


def load(path: Path) -> np.ndarray:
    """The ``.npy`` file at ``path``, read in full."""
    with open(path, "rb") as f:
        return read(f, os.fstat(f.fileno()).st_size, str(path))


def reason(exc: BaseException) -> str:
    """What went wrong, in words, for an exception that may carry none (a compressed member that ends early
    raises a bare ``EOFError``)."""
    if str(exc):
        return str(exc)
    return "a member's compressed data ends early" if isinstance(exc, EOFError) else type(exc).__name__
