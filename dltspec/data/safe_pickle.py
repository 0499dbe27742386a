"""A restricted unpickler: numpy arrays, dtypes and plain containers only.

Loading a pickle from an untrusted source normally executes code (digest §7).
:func:`load` refuses any global outside :data:`ALLOWED`, so a pickle that
tries to import ``os.system`` (or anything else) raises :class:`UnsafePickle`
naming the global it asked for, before anything is called.
"""
from __future__ import annotations

import gzip
import io
import pickle
from pathlib import Path

from dltspec.diagnostics import DltspecError

#: (module, name) pairs a data or parameter pickle may reference.
ALLOWED = frozenset({
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"),
    ("_codecs", "encode"),  # protocol-2 pickles written by Python 3 encode bytes this way
    ("collections", "OrderedDict"),
})


class UnsafePickle(DltspecError, pickle.UnpicklingError):
    """A pickle asked for a global outside :data:`ALLOWED`."""

    def __init__(self, module: str, name: str):
        self.global_name = f"{module}.{name}"
        super().__init__(f"refused to load '{self.global_name}': only numpy arrays and plain containers are allowed")


class RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) not in ALLOWED:
            raise UnsafePickle(module, name)
        return super().find_class(module, name)


def load_stream(raw):
    """Unpickle the binary stream ``raw`` (plain or gzip'd) with :class:`RestrictedUnpickler`, streaming
    it: a decompressed pickle is never held in memory whole, only the arrays it builds. Python 2 pickles too."""
    gzipped = raw.read(2) == b"\x1f\x8b"
    raw.seek(0)
    stream = io.BufferedReader(gzip.GzipFile(fileobj=raw), 1 << 20) if gzipped else raw
    return RestrictedUnpickler(stream, encoding="latin1").load()


def load_bytes(data: bytes):
    """Unpickle ``data`` (plain or gzip'd) safely (see :func:`load_stream`)."""
    return load_stream(io.BytesIO(data))


def load(path: Path):
    """Unpickle the file at ``path`` safely (see :func:`load_stream`)."""
    with open(path, "rb") as raw:
        return load_stream(raw)
