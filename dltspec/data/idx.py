"""LeCun's IDX format (MNIST's four files), gzip'd or not.

A file is a magic number ``00 00 TT DD`` (``TT`` the element type, ``DD`` the number of
dimensions), ``DD`` big-endian uint32 sizes, then the elements, big-endian, row-major.
"""
from __future__ import annotations

import gzip
import math
import struct
import zlib
from pathlib import Path

import numpy as np

from dltspec.diagnostics import DltspecError

#: IDX type code -> numpy dtype (big-endian)
TYPES = {0x08: np.dtype("u1"), 0x09: np.dtype("i1"), 0x0B: np.dtype(">i2"), 0x0C: np.dtype(">i4"),
         0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}


#: the most a deflate stream inflates: 1032 bytes out per byte in
MAX_DEFLATE_RATIO = 1032


class IdxError(DltspecError, ValueError):
    """Not an IDX file, or a damaged one."""


def declared_size(data: bytes, name: str = "IDX data") -> tuple[int, tuple, np.dtype, int]:
    """``(header bytes, shape, dtype, total bytes)`` as an IDX header declares them, in Python integers
    (a product of sizes that would overflow int64 is only a large number here)."""
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
    return header, shape, dtype, header + math.prod(shape) * dtype.itemsize


def parse(data: bytes, name: str = "IDX data") -> np.ndarray:
    """The array an IDX file's bytes hold."""
    header, shape, dtype, expected = declared_size(data, name)
    if len(data) != expected:
        raise IdxError(f"{name}: {len(data)} bytes, but its header {shape} of {dtype.name} needs {expected}")
    if math.prod(d for d in shape if d) * dtype.itemsize >= 2 ** 63:  # an empty array numpy cannot shape
        raise IdxError(f"{name}: its header {shape} declares an array too large to exist (even an empty one)")
    return np.frombuffer(data, dtype=dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


def read(path: Path) -> np.ndarray:
    """The array in the IDX file at ``path`` (gzip'd or not). A gzip'd file is inflated only as far as
    its header declares (plus one byte, to tell that it holds more): never a bomb in memory."""
    path = Path(path)
    with open(path, "rb") as f:
        magic = f.read(2)
    if magic != b"\x1f\x8b":
        return parse(path.read_bytes(), str(path))
    try:
        with gzip.open(path, "rb") as f:
            head = f.read(4 + 4 * 255)
            _, _, _, expected = declared_size(head[:4 + 4 * head[3]] if len(head) >= 4 else head, str(path))
            packed = path.stat().st_size
            if expected > packed * MAX_DEFLATE_RATIO:
                raise IdxError(f"{path}: its header declares {expected:,} bytes, more than its {packed:,} gzip'd "
                               "bytes can hold")
            parts, have = [head], len(head)
            while have <= expected:  # in pieces: nothing is allocated for what the file does not hold
                piece = f.read(min(1 << 20, expected + 1 - have))
                if not piece:
                    break
                parts.append(piece)
                have += len(piece)
    except (OSError, EOFError, zlib.error) as exc:
        raise IdxError(f"{path}: damaged gzip data: {exc}") from None
    raw = b"".join(parts)
    if len(raw) > expected:
        raise IdxError(f"{path}: inflates to more than the {expected:,} bytes its header declares")
    return parse(raw, str(path))


def dumps(array: np.ndarray) -> bytes:
    """``array`` as IDX bytes (for tests and tools)."""
    code = next(c for c, t in TYPES.items() if t.newbyteorder("=") == array.dtype.newbyteorder("="))
    header = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + np.ascontiguousarray(array, dtype=TYPES[code]).tobytes()
