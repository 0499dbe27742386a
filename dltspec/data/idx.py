"""LeCun's IDX format (MNIST's four files), gzip'd or not.

A file is a magic number ``00 00 TT DD`` (``TT`` the element type, ``DD`` the number of
dimensions), ``DD`` big-endian uint32 sizes, then the elements, big-endian, row-major.
"""
from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np

from dltspec.diagnostics import DltspecError

#: IDX type code -> numpy dtype (big-endian)
TYPES = {0x08: np.dtype("u1"), 0x09: np.dtype("i1"), 0x0B: np.dtype(">i2"), 0x0C: np.dtype(">i4"),
         0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}


class IdxError(DltspecError, ValueError):
    """Not an IDX file, or a damaged one."""


def parse(data: bytes, name: str = "IDX data") -> np.ndarray:
    """The array an IDX file's bytes hold."""
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise IdxError(f"{name} is not an IDX file (it does not start with 00 00)")
    code, ndim = data[2], data[3]
    if code not in TYPES:
        raise IdxError(f"{name}: unknown IDX element type 0x{code:02x}")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise IdxError(f"{name}: truncated header")
    shape = struct.unpack(f">{ndim}I", data[4:header])
    dtype = TYPES[code]
    expected = header + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(data) != expected:
        raise IdxError(f"{name}: {len(data)} bytes, but its header {shape} of {dtype.name} needs {expected}")
    return np.frombuffer(data, dtype=dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


def read(path: Path) -> np.ndarray:
    """The array in the IDX file at ``path`` (gzip'd or not)."""
    raw = Path(path).read_bytes()
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as exc:
            raise IdxError(f"{path}: damaged gzip data: {exc}") from None
    return parse(raw, str(path))


def dumps(array: np.ndarray) -> bytes:
    """``array`` as IDX bytes (for tests and tools)."""
    code = next(c for c, t in TYPES.items() if t.newbyteorder("=") == array.dtype.newbyteorder("="))
    header = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + np.ascontiguousarray(array, dtype=TYPES[code]).tobytes()
