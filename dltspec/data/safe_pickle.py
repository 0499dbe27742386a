"""A restricted unpickler: numpy arrays, dtypes and plain containers only.

Loading a pickle from an untrusted source normally executes code (digest §7).
:func:`load` refuses any global outside :data:`ALLOWED`, so a pickle that
tries to import ``os.system`` (or anything else) raises :class:`UnsafePickle`
naming the global it asked for, before anything is called.

The globals it allows are used only the way numpy's own pickles use them, since numpy trusts
what it is given (a pickle that sets an object array's state from a short list crashes the
interpreter): an array is an empty placeholder (``_reconstruct``) whose state is set once, from
bytes, with a dtype that holds no Python objects; a dtype's state is set once, before anything
uses it; ``numpy.ndarray`` is never called (it would allocate whatever size it is asked for);
``_codecs.encode`` only turns text into latin-1 bytes. Anything else is an
:class:`pickle.UnpicklingError` saying what the pickle asked for. It is read with the Python
unpickler (which lets every step be checked), streaming: a decompressed pickle is never held
in memory whole.
"""
from __future__ import annotations

import codecs
import gzip
import io
import math
import pickle
import struct
from collections import OrderedDict
from pathlib import Path

import numpy as np

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


def refuse(what: str):
    raise pickle.UnpicklingError(f"refused {what}: not what a pickle of numpy arrays does")


def _latin1(text, encoding="utf-8", errors="strict"):
    """``_codecs.encode`` as protocol-2 pickles use it: text to latin-1 bytes."""
    try:
        latin1 = isinstance(text, str) and isinstance(encoding, str) and codecs.lookup(encoding).name == "iso8859-1"
    except LookupError:
        latin1 = False
    if not latin1:
        refuse(f"_codecs.encode of {type(text).__name__} with encoding {encoding!r}")
    return text.encode("latin-1")


class RestrictedUnpickler(pickle._Unpickler):
    """The Python unpickler, with the globals of :data:`ALLOWED` used only as numpy's pickles use them."""

    dispatch = dict(pickle._Unpickler.dispatch)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.source = args[0] if args else kwargs.get("file")
        self.placeholders: dict[int, np.ndarray] = {}  # arrays from _reconstruct whose state is not yet set
        self.made: dict[int, tuple[np.dtype, tuple]] = {}  # dtypes from numpy.dtype whose state is not yet set
        self.used: dict[int, np.dtype] = {}  # dtypes that arrays, scalars or other dtypes use: never changed again

    def use(self, dtype) -> np.dtype:
        """``dtype`` (a dtype the pickle made) as something uses it: from now on it may not be changed."""
        if not isinstance(dtype, np.dtype):
            refuse(f"a dtype that is a {type(dtype).__name__}")
        if dtype.hasobject:
            refuse(f"a dtype that holds Python objects ({dtype})")
        self.used[id(dtype)] = dtype
        self.made.pop(id(dtype), None)
        for field in (dtype.fields or {}).values():
            self.use(field[0])
        if dtype.subdtype is not None:
            self.use(dtype.subdtype[0])
        return dtype

    def find_class(self, module: str, name: str):
        if (module, name) not in ALLOWED:
            raise UnsafePickle(module, name)
        return {"dtype": self.make_dtype, "_reconstruct": self.reconstruct, "scalar": self.scalar,
                "_frombuffer": self.frombuffer, "encode": _latin1}.get(name) or super().find_class(module, name)

    def make_dtype(self, *args):
        # align and copy as flags: Python 2 pickles (MNIST's) give them as 0 and 1
        args = args[:1] + tuple(bool(a) if isinstance(a, int) else a for a in args[1:])
        dtype = np.dtype(*args)
        if dtype.hasobject:
            refuse(f"a dtype that holds Python objects ({dtype})")
        self.made[id(dtype)] = (dtype, args)
        return dtype

    def reconstruct(self, subtype, shape, typecode):
        if subtype is not np.ndarray or not isinstance(shape, tuple) or math.prod(
                s if isinstance(s, int) else 1 for s in shape) != 0:
            refuse(f"an array placeholder of {getattr(subtype, '__name__', subtype)} {shape!r}")
        array = np.ndarray.__new__(np.ndarray, (0,), "b")
        self.placeholders[id(array)] = array
        return array

    def scalar(self, dtype, data=None):
        from numpy._core.multiarray import scalar

        if not isinstance(data, (bytes, str)):
            refuse(f"a numpy scalar made from {type(data).__name__}")
        return scalar(self.use(dtype), data)

    def frombuffer(self, buffer, dtype, shape, order):
        from numpy._core.numeric import _frombuffer

        if not isinstance(buffer, (bytes, bytearray)):
            refuse(f"an array made from a {type(buffer).__name__}")
        return _frombuffer(buffer, self.use(dtype), shape, order)

    # -- the opcodes that call or set the state of what the globals give ------------------

    def load_reduce(self):
        func = self.stack[-2]
        if func is np.ndarray:
            refuse("numpy.ndarray called directly")
        super().load_reduce()

    dispatch[pickle.REDUCE[0]] = load_reduce

    def load_newobj(self):
        if self.stack[-2] is not OrderedDict:
            refuse(f"{getattr(self.stack[-2], '__name__', 'an object')}.__new__")
        super().load_newobj()

    dispatch[pickle.NEWOBJ[0]] = load_newobj

    def load_newobj_ex(self):
        if self.stack[-3] is not OrderedDict:
            refuse(f"{getattr(self.stack[-3], '__name__', 'an object')}.__new__")
        super().load_newobj_ex()

    dispatch[pickle.NEWOBJ_EX[0]] = load_newobj_ex

    def _instantiate(self, klass, args):
        if klass is not OrderedDict:
            refuse(f"{getattr(klass, '__name__', klass)} instantiated")
        super()._instantiate(klass, args)

    def load_build(self):
        state, inst = self.stack[-1], self.stack[-2]
        if isinstance(inst, np.ndarray) and self.placeholders.pop(id(inst), None) is inst:
            self.check_array_state(state)
        elif isinstance(inst, np.dtype) and id(inst) in self.made:
            self.check_dtype_state(inst, state)
        else:
            again = " again" if isinstance(inst, np.ndarray | np.dtype) else ""
            refuse(f"the state of {type(inst).__name__} set{again}")
        super().load_build()

    dispatch[pickle.BUILD[0]] = load_build

    def load_bytearray8(self):
        (size,) = struct.unpack("<Q", self.read(8))
        limit = getattr(self.source, "limit", None)
        if limit is not None and size > limit:  # the Python unpickler fills a bytearray of this size before reading
            raise pickle.UnpicklingError(f"it declares a bytearray of {size:,} bytes where {self.source.what} "
                                         "(truncated or damaged)")
        buffer = bytearray(size)
        self.readinto(buffer)
        self.append(buffer)

    dispatch[pickle.BYTEARRAY8[0]] = load_bytearray8

    def check_array_state(self, state):
        """An array's state: ``([version,] shape, dtype, fortran, data)``, its data bytes (or latin-1 text)."""
        if not isinstance(state, tuple) or len(state) not in (4, 5):
            refuse(f"an array state that is a {type(state).__name__}")
        self.use(state[-3])
        if not isinstance(state[-1], (bytes, str)):
            refuse(f"an array's data given as {type(state[-1]).__name__}")

    def check_dtype_state(self, dtype: np.dtype, state):
        """A dtype's state, tried first on a copy: the dtypes it names are used, and it may not hold objects."""
        _, args = self.made.pop(id(dtype))
        if isinstance(state, tuple):
            for part in state:
                if isinstance(part, np.dtype):
                    self.use(part)
                elif isinstance(part, tuple) and part and isinstance(part[0], np.dtype):  # a subarray
                    self.use(part[0])
                elif isinstance(part, dict):  # fields: name -> (dtype, offset[, title])
                    for field in part.values():
                        if isinstance(field, tuple) and field:
                            self.use(field[0])
        trial = np.dtype(*args)
        trial.__setstate__(state)
        if trial.hasobject:
            refuse(f"a dtype that holds Python objects ({trial})")
        self.used[id(dtype)] = dtype


#: the most a deflate stream inflates: 1032 bytes out per byte in
MAX_DEFLATE_RATIO = 1032


class Bounded:
    """A stream that refuses to read more than ``limit`` bytes in all: a length the pickle declares beyond what
    the file can hold is an error before anything is allocated for it."""

    def __init__(self, stream, limit: int, what: str):
        self.stream, self.left, self.limit, self.what = stream, limit, limit, what

    def take(self, n: int) -> None:
        if n > self.left and n > 1 << 16:  # a small read past the end is left to say where the pickle ends
            raise pickle.UnpicklingError(f"it declares {n:,} bytes where {self.what} (truncated or damaged)")
        self.left -= n

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0:
            n = self.left
        self.take(n)
        data = self.stream.read(n)
        self.left += n - len(data)
        return data

    def readinto(self, buffer) -> int:
        self.take(len(buffer))
        got = self.stream.readinto(buffer)
        self.left += len(buffer) - got
        return got

    def readline(self) -> bytes:
        line = self.stream.readline()
        self.left -= len(line)
        return line


def load_stream(raw):
    """Unpickle the binary stream ``raw`` (plain or gzip'd) with :class:`RestrictedUnpickler`, streaming
    it: a decompressed pickle is never held in memory whole, only the arrays it builds. Python 2 pickles too."""
    size = raw.seek(0, io.SEEK_END)
    raw.seek(0)
    gzipped = raw.read(2) == b"\x1f\x8b"
    raw.seek(0)
    if gzipped:
        stream = Bounded(io.BufferedReader(gzip.GzipFile(fileobj=raw), 1 << 20), size * MAX_DEFLATE_RATIO,
                         f"its {size:,} gzip'd bytes cannot hold that many")
    else:
        stream = Bounded(raw, size, "the file has fewer left")
    try:
        return RestrictedUnpickler(stream, encoding="latin1").load()
    except DltspecError:
        raise
    except Exception as exc:  # noqa: BLE001 - whatever damaged or hostile data makes the unpickler raise
        raise pickle.UnpicklingError(reason(exc)) from None


def reason(exc: Exception) -> str:
    """What went wrong, in words, for a failure of the (Python) unpickler."""
    if isinstance(exc, EOFError):
        return "the pickle ends early (truncated)"
    if isinstance(exc, MemoryError):
        return "it declares an object larger than memory can hold"
    if isinstance(exc, KeyError):
        return f"damaged pickle data (it refers to memo entry {exc} that it never stored)"
    if isinstance(exc, (pickle.UnpicklingError, OSError)) and str(exc):
        return str(exc)
    return f"damaged pickle data ({type(exc).__name__}{': ' if str(exc) else ''}{exc})"


def load_bytes(data: bytes):
    """Unpickle ``data`` (plain or gzip'd) safely (see :func:`load_stream`)."""
    return load_stream(io.BytesIO(data))


def load(path: Path):
    """Unpickle the file at ``path`` safely (see :func:`load_stream`)."""
    with open(path, "rb") as raw:
        return load_stream(raw)
