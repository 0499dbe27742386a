"""Hypothesis strategies that write data files and parameter files, valid and damaged, and the properties every
loader of such a file must keep.

A damaged case starts from a valid file (a tutorial pickle, an ``.npz`` archive, a folder of ``.npy`` files, IDX
files plain or gzip'd, a parameter file, a PNG or ``.npy`` input for ``predict``) and changes it: bytes flipped,
inserted, deleted or overwritten with telling values, the file truncated, header fields (IDX sizes and types,
``.npy`` shapes and dtypes) rewritten, arrays swapped for odd ones (NaN, infinities, huge values, 0-d, empty,
object, text, complex, wrong lengths, wrong label dtypes), containers changed; or it is random bytes behind a
real magic number. :func:`outcome` asserts what must hold for any of them: the loader returns, or raises a
:class:`~dltspec.diagnostics.DltspecError` that names the file (a :class:`~dltspec.data.checks.DataError` may
instead be located at the spec's ``path`` key, which names it), within :data:`HANG_SECONDS` and without
allocating more than :func:`memory_limit`; any other exception fails the case. The valid cases check that what
is loaded equals what was written, after the documented conversions (x as float32 rows, labels as int64).
"""
from __future__ import annotations

import gzip
import io
import pickle
import re
import tempfile
import time
import tracemalloc
import warnings
import zipfile
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from dltspec.data import idx, loaders
from dltspec.data.checks import MAX_LABEL, DataError
from dltspec.diagnostics import CODES, DltspecError

#: seconds a case may take before it counts as a hang (generous: it is not a speed goal)
HANG_SECONDS = 10.0
SPLITS = ("train", "valid", "test")


# -- the properties ------------------------------------------------------------------------------------------

def memory_limit(size: int) -> int:
    """The most a loader may allocate for ``size`` bytes of input: what a gzip'd file can inflate to, and room."""
    return (32 << 20) + 1100 * size


#: the dataset keys a DataError may be located at: the file's path, or the settings that split it
DATASET_KEYS = {"path", "valid_size", "valid_fraction", "valid_range", "n_train", "n_valid", "n_test"}


def assert_clear(exc: DltspecError, names: tuple[str, ...]) -> None:
    """``exc`` is a clear, located error: one message that names the file (or, for a data set, is located at
    the spec's ``path`` key, which names it, or at the split setting that does not fit the file)."""
    message = exc.message
    assert message and message.strip() == message, repr(message)
    if isinstance(exc, DataError):
        assert exc.code in CODES and exc.key in DATASET_KEYS, (exc.code, exc.key)
        if exc.key != "path":  # the file is read, but the block's split settings do not fit it
            assert exc.code == "DLT306", (exc.code, exc.key)
        return
    if getattr(exc, "code", None) is not None:
        assert exc.code in CODES, exc.code
    assert any(name in message for name in names), (message, names)


@contextmanager
def watched(size: int):
    """Time and memory of one load: a hang or a huge allocation fails the case."""
    tracing = tracemalloc.is_tracing()
    if not tracing:
        tracemalloc.start()
    tracemalloc.reset_peak()
    started = time.monotonic()
    try:
        yield
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        if not tracing:
            tracemalloc.stop()
    assert time.monotonic() - started < HANG_SECONDS, "a hang"
    assert peak < memory_limit(size), f"allocated {peak:,} bytes for {size:,} bytes of input"


def outcome(load, *names: str, size: int = 0):
    """What ``load()`` returns, or ``None`` where it raised a clear error naming one of ``names``."""
    with watched(size):
        try:
            return load()
        except DltspecError as exc:
            assert_clear(exc, names)
            return None


def assert_splits_sound(splits: loaders.Splits) -> None:
    """What any loaded data set holds, whatever file it came from."""
    widths = set()
    for split in SPLITS:
        x, y = splits.arrays[split]
        assert x.dtype == np.float32 and x.ndim == 2 and x.shape[1] >= 1, (split, x.dtype, x.shape)
        assert y.dtype == np.int64 and y.shape == (len(x),), (split, y.dtype, y.shape)
        assert np.isfinite(x).all() and (len(y) == 0 or 0 <= y.min() <= y.max() <= MAX_LABEL)
        widths.add(x.shape[1])
    assert len(widths) == 1


def assert_equal_arrays(got: np.ndarray, expected: np.ndarray) -> None:
    assert got.dtype == expected.dtype and got.shape == expected.shape, (got.dtype, got.shape, expected.dtype,
                                                                         expected.shape)
    assert np.array_equal(got, expected, equal_nan=got.dtype.kind == "f"), (got, expected)


# -- byte mutations ------------------------------------------------------------------------------------------

TELLING = [b"\x00", b"\xff", b"\x80", b"\x7f\xff\xff\xff", b"\xff\xff\xff\xff", b"\x00\x00\x00\x00",
           b"\xff" * 8, b"(", b")", b".", b"N", b"]", b"R", b"b", b"c", b"\x93NUMPY", b"PK\x03\x04", b"\x1f\x8b",
           b"\x89PNG\r\n\x1a\n", b"IHDR", b"IDAT", b"IEND"]
position = st.integers(0, 1 << 16)
BYTE_MUTATIONS = st.one_of(
    st.tuples(st.just("flip"), position, st.integers(1, 255)),
    st.tuples(st.just("insert"), position, st.one_of(st.binary(min_size=1, max_size=16), st.sampled_from(TELLING))),
    st.tuples(st.just("delete"), position, st.integers(1, 64)),
    st.tuples(st.just("truncate"), position, st.just(0)),
    st.tuples(st.just("overwrite"), position, st.one_of(st.binary(min_size=1, max_size=8), st.sampled_from(TELLING))),
)


def mutate_bytes(data: bytes, mutations) -> bytes:
    for kind, pos, arg in mutations:
        pos %= len(data) + 1
        if kind == "flip" and pos < len(data):
            data = data[:pos] + bytes([data[pos] ^ arg]) + data[pos + 1:]
        elif kind == "insert":
            data = data[:pos] + arg + data[pos:]
        elif kind == "delete":
            data = data[:pos] + data[pos + arg:]
        elif kind == "truncate":
            data = data[:pos]
        elif kind == "overwrite":
            data = data[:pos] + arg + data[pos + len(arg):]
    return data


byte_mutations = st.lists(BYTE_MUTATIONS, min_size=1, max_size=5)
MAGICS = [b"", b"\x1f\x8b\x08\x00\x00\x00\x00\x00", b"\x80\x04\x95", b"\x80\x02", b"\x93NUMPY\x01\x00",
          b"PK\x03\x04", b"\x89PNG\r\n\x1a\n", b"\x00\x00\x08\x03", b"\x00\x00\x0d\x01", b"GIF89a", b"\xff\xd8\xff"]
random_files = st.tuples(st.sampled_from(MAGICS), st.binary(max_size=400)).map(lambda t: t[0] + t[1])


# -- arrays, valid and odd -----------------------------------------------------------------------------------

X_DTYPES = [np.float32, np.float64, np.uint8, np.int16, np.int64, np.float16, ">f8", np.bool_]
Y_DTYPES = [np.int64, np.int32, np.uint8, np.uint64, np.int8, ">i4", np.float64, np.float32]


@st.composite
def features(draw, n: int, width: int, dtype=None) -> np.ndarray:
    """``n`` rows of ``width`` finite features, within float32's range."""
    dtype = np.dtype(dtype or draw(st.sampled_from(X_DTYPES)))
    if dtype.kind == "f":
        elements = st.floats(-1e4, 1e4, width=min(32, dtype.itemsize * 8), allow_subnormal=False)
    else:
        elements = None
    return draw(hnp.arrays(dtype, (n, width), elements=elements))


@st.composite
def labels(draw, n: int, dtype=None) -> np.ndarray:
    dtype = np.dtype(dtype or draw(st.sampled_from(Y_DTYPES)))
    return draw(hnp.arrays(np.int64, n, elements=st.integers(0, 9))).astype(dtype)


@st.composite
def tutorial_data(draw) -> tuple:
    """Three valid ``(x, y)`` pairs of the same width (at least one example each)."""
    width = draw(st.integers(1, 5))
    dtype, ydtype = draw(st.sampled_from(X_DTYPES)), draw(st.sampled_from(Y_DTYPES))
    out = []
    for _ in SPLITS:
        n = draw(st.integers(1, 6))
        out.append((draw(features(n, width, dtype)), draw(labels(n, ydtype))))
    return tuple(out)


def odd_arrays() -> st.SearchStrategy:
    """Arrays (and a few things that are not) that a data file should not hold, or holds only at the edge."""
    fixed = [np.float32(1.5), np.array(3), np.array(np.nan), np.full((2, 2), np.nan, np.float32),
             np.full((2, 2), np.inf), np.full((2, 2), -np.inf, np.float32), np.full((2, 2), 1e39),
             np.full((2, 2), 1e300), np.array([["a", "b"]]), np.array([1, "a"], dtype=object),
             np.array([[None, None]], dtype=object), np.zeros((2, 0)), np.zeros((0, 3), np.float32),
             np.zeros((0, 0)), np.zeros((2, 0, 3)), np.zeros((3, 2), complex), np.array([1.5, 2.0]),
             np.array([-1, 0]), np.array([2**63 + 5, 1], np.uint64), np.array([MAX_LABEL + 1, 0]),
             np.zeros(3, "M8[s]"), np.zeros(3, [("a", "f4"), ("b", "i2")]), np.ones((2, 2), np.float16),
             np.ones((2, 2), bool), np.ones((2, 3), ">f8"), np.asfortranarray(np.ones((3, 2))),
             np.ones((4, 4))[::2, ::3], np.zeros((2, 2, 2, 2)), np.array([np.nan, 1.0]), np.array([0.0, np.inf]),
             np.zeros((1, 1), "V3"), np.array([b"xy"]), np.longdouble(1e4000) * np.ones((2, 2), np.longdouble)]
    return st.one_of(st.sampled_from(fixed),
                     hnp.arrays(st.sampled_from(X_DTYPES + Y_DTYPES), hnp.array_shapes(min_dims=0, max_dims=3,
                                                                                      min_side=0, max_side=4)))


NOT_ARRAYS = [None, "text", 3, 2.5, [1, [2, 3]], [[1, 2], [3]], {"a": 1}, (1, 2, 3), [], b"bytes"]


# -- pickle data sets ----------------------------------------------------------------------------------------

PICKLE_PROTOCOLS = st.sampled_from([0, 2, 4, 5])


def pickled(obj, protocol: int, gz: bool) -> bytes:
    raw = pickle.dumps(obj, protocol=protocol)
    return gzip.compress(raw, compresslevel=1) if gz else raw


@st.composite
def odd_tutorial_objects(draw):
    """The tutorial's structure with one to three parts replaced: odd arrays, values that are not arrays,
    wrong lengths, containers of the wrong kind or size."""
    obj = [list(pair) for pair in draw(tutorial_data())]
    for _ in range(draw(st.integers(0, 3))):
        kind = draw(st.sampled_from(["array", "value", "length"]))
        split, role = draw(st.integers(0, 2)), draw(st.integers(0, 1))
        if kind == "array":
            obj[split][role] = draw(odd_arrays())
        elif kind == "value":
            obj[split][role] = draw(st.sampled_from(NOT_ARRAYS))
        else:
            part = obj[split][role]
            obj[split][role] = part[:draw(st.integers(0, 3))] if getattr(part, 'ndim', 0) else part
    if draw(st.booleans()):
        obj = draw(st.sampled_from([lambda o: o[:2], lambda o: o + [o[0]], lambda o: [p[:1] for p in o],
                                    lambda o: {"train": o[0]}, lambda o: [p + [p[0]] for p in o],
                                    lambda o: None, lambda o: [o[0], tuple(o[1]), None]]))(obj)
    if isinstance(obj, list):
        obj = tuple(tuple(p) if isinstance(p, list) else p for p in obj)
    return obj  # at least one change: a container, or a part (an unchanged draw is a valid case, also fine)


def load_pickle_file(data: bytes, name: str = "data.pkl.gz"):
    """Write ``data`` to a fresh file and load it as ``dataset pickle`` does: the Splits, or ``None``."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / name
        path.write_bytes(data)
        splits = outcome(lambda: loaders.load({"kind": "pickle", "path": name}, Path(folder)), str(path),
                         size=len(data))
    if splits is not None:
        assert_splits_sound(splits)
    return splits


def check_valid_pickle(obj: tuple, protocol: int, gz: bool) -> None:
    splits = load_pickle_file(pickled(obj, protocol, gz))
    assert splits is not None, "a valid pickle was refused"
    for split, (x, y) in zip(SPLITS, obj):
        assert_equal_arrays(np.asarray(splits.arrays[split][0]), x.astype(np.float32))
        assert_equal_arrays(np.asarray(splits.arrays[split][1]), y.astype(np.int64))


def check_pickle_bytes(data: bytes) -> None:
    load_pickle_file(data)


# -- .npz archives and folders of .npy files -----------------------------------------------------------------

def npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=True)
    return buffer.getvalue()


@st.composite
def named_arrays(draw) -> dict[str, np.ndarray]:
    """``x_train, y_train, x_test, y_test`` (valid optional), valid: a training source of at least 2 rows."""
    (x, y), (vx, vy), (tx, ty) = draw(tutorial_data())
    if len(y) < 2:
        x, y = np.concatenate([x, x]), np.concatenate([y, y])
    shape = draw(st.sampled_from([None, "split"]))
    if shape == "split" and x.shape[1] % 2 == 0:
        x, vx, tx = (a.reshape(len(a), 2, -1) for a in (x, vx, tx))  # images: flattened as rows
    named = {"x_train": x, "y_train": y, "x_test": tx, "y_test": ty}
    if draw(st.booleans()):
        named.update(x_valid=vx, y_valid=vy)
    return named


def expected_splits(named: dict[str, np.ndarray]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """What ``dataset npz``/``npy`` with ``valid_size = 1`` makes of ``named`` (no shuffling, no scaling)."""
    def rows(a):
        return a.reshape(len(a), -1).astype(np.float32)

    x, y = rows(named["x_train"]), named["y_train"].astype(np.int64)
    out = {"test": (rows(named["x_test"]), named["y_test"].astype(np.int64))}
    if "x_valid" in named:
        out["train"], out["valid"] = (x, y), (rows(named["x_valid"]), named["y_valid"].astype(np.int64))
    else:
        out["train"], out["valid"] = (x[:-1], y[:-1]), (x[-1:], y[-1:])
    return out


@st.composite
def odd_named_arrays(draw) -> dict:
    """Valid named arrays with one to three changed: odd arrays, wrong lengths, members missing or extra."""
    named = dict(draw(named_arrays()))
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["array", "length", "drop", "extra"]))
        name = draw(st.sampled_from(sorted(named) or ["x_train"]))
        if kind == "array":
            named[name] = draw(odd_arrays())
        elif kind == "length" and name in named:
            part = named[name]
            named[name] = part[:draw(st.integers(0, 3))] if getattr(part, 'ndim', 0) else part
        elif kind == "drop":
            named.pop(name, None)
        else:
            named[draw(st.sampled_from(["x_valid", "y_valid", "extra", "x_train.npy"]))] = draw(odd_arrays())
    return named


def npz_bytes(named: dict, compressed: bool) -> bytes:
    buffer = io.BytesIO()
    with warnings.catch_warnings():  # a name given twice: the archive holds both, as a hostile one may
        warnings.simplefilter("ignore", UserWarning)
        return npz_archive(buffer, named, compressed)


def npz_archive(buffer, named: dict, compressed: bool) -> bytes:
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED if compressed else zipfile.ZIP_STORED) as archive:
        for name, array in named.items():
            archive.writestr(name if name.endswith(".npy") else f"{name}.npy", npy_bytes(np.asarray(array)))
    return buffer.getvalue()


BLOCK = {"valid_size": 1}


def load_npz_file(data: bytes):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "data.npz"
        path.write_bytes(data)
        splits = outcome(lambda: loaders.load({"kind": "npz", "path": "data.npz", **BLOCK}, Path(folder)),
                         str(path), size=len(data))
        if splits is not None:
            assert_splits_sound(splits)
            splits = {s: tuple(np.array(a) for a in splits.arrays[s]) for s in SPLITS}  # read before removal
    return splits


def check_valid_npz(named: dict, compressed: bool) -> None:
    splits = load_npz_file(npz_bytes(named, compressed))
    assert splits is not None, "a valid .npz archive was refused"
    for split, (x, y) in expected_splits(named).items():
        assert_equal_arrays(splits[split][0], x)
        assert_equal_arrays(splits[split][1], y)


def check_npz_bytes(data: bytes) -> None:
    load_npz_file(data)


def load_npy_folder(files: dict[str, bytes]):
    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / "d").mkdir()
        for name, data in files.items():
            (Path(folder) / "d" / f"{name}.npy").write_bytes(data)
        size = sum(len(d) for d in files.values())
        splits = outcome(lambda: loaders.load({"kind": "npy", "path": "d", **BLOCK}, Path(folder)),
                         str(Path(folder) / "d"), size=size)
        if splits is not None:
            assert_splits_sound(splits)
            splits = {s: tuple(np.array(a) for a in splits.arrays[s]) for s in SPLITS}  # read before removal
    return splits


def check_valid_npy_folder(named: dict) -> None:
    splits = load_npy_folder({name: npy_bytes(a) for name, a in named.items()})
    assert splits is not None, "a valid folder of .npy files was refused"
    for split, (x, y) in expected_splits(named).items():
        assert_equal_arrays(splits[split][0], x)
        assert_equal_arrays(splits[split][1], y)


SHAPES = ["()", "(0,)", "(1,)", "(3, 2)", "(-1,)", "(4294967295, 4294967295, 3)", "(100000000000,)", "(2**40,)",
          "(0, 100000000000)", "('a',)", "(1.5,)", "[3]", "None", "(3, 2, 1, 1, 1, 1)", "(9223372036854775807, 2)"]
DESCRS = ["'<f8'", "'|O'", "'>i4'", "'|V0'", "'<U3'", "'|b1'", "'<c16'", "'<M8[s]'", "[('a', '<f4')]",
          "[('a', '|O')]", "'x'", "'<f4'", "('<f4', (2,))", "'|S0'", "'<f8', 'extra': 1"]


def edit_npy_header(data: bytes, shape: str | None, descr: str | None, fortran: str | None) -> bytes:
    """``data`` (an ``.npy`` file) with header fields rewritten, the header's length fixed up."""
    match = re.match(rb"(\x93NUMPY\x01\x00)(..)(\{.*?\}\s*\n)", data, re.S)
    if not match:
        return data
    text = match.group(3).decode("latin1")
    if shape is not None:
        text = re.sub(r"'shape': \([^)]*\)", f"'shape': {shape}", text)
    if descr is not None:
        text = re.sub(r"'descr': ('[^']*'|\[.*?\])", f"'descr': {descr}", text)
    if fortran is not None:
        text = text.replace("'fortran_order': False", f"'fortran_order': {fortran}")
    header = text.encode("latin1")
    return match.group(1) + len(header).to_bytes(2, "little") + header + data[match.end():]


npy_header_edits = st.tuples(st.none() | st.sampled_from(SHAPES), st.none() | st.sampled_from(DESCRS),
                             st.none() | st.sampled_from(["True", "1", "'no'"]))


@st.composite
def damaged_npy_folders(draw) -> dict[str, bytes]:
    """A valid folder's files, one to three of them with bytes mutated or header fields rewritten."""
    files = {name: npy_bytes(a) for name, a in draw(named_arrays()).items()}
    for _ in range(draw(st.integers(1, 3))):
        name = draw(st.sampled_from(sorted(files)))
        if draw(st.booleans()):
            files[name] = edit_npy_header(files[name], *draw(npy_header_edits))
        else:
            files[name] = mutate_bytes(files[name], draw(byte_mutations))
    return files


@st.composite
def damaged_npz_files(draw) -> bytes:
    """A valid archive mutated as bytes, or rebuilt with a member's header rewritten."""
    named = draw(named_arrays())
    compressed = draw(st.booleans())
    if draw(st.booleans()):
        return mutate_bytes(npz_bytes(named, compressed), draw(byte_mutations))
    buffer = io.BytesIO()
    victim = draw(st.sampled_from(sorted(named)))
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED if compressed else zipfile.ZIP_STORED) as archive:
        for name, array in named.items():
            data = npy_bytes(array)
            if name == victim:
                data = edit_npy_header(data, *draw(npy_header_edits))
            archive.writestr(f"{name}.npy", data)
    return buffer.getvalue()


# -- IDX files -----------------------------------------------------------------------------------------------

IDX_DTYPES = [t.newbyteorder("=") for t in idx.TYPES.values()]


@st.composite
def idx_arrays(draw, min_dims: int = 0) -> np.ndarray:
    dtype = draw(st.sampled_from(IDX_DTYPES))
    shape = draw(hnp.array_shapes(min_dims=min_dims, max_dims=4, min_side=0, max_side=4))
    return draw(hnp.arrays(dtype, shape))


@st.composite
def idx_header_edits(draw, data: bytes) -> bytes:
    """``data`` (an IDX file) with its magic, type code, number of dimensions or a size rewritten."""
    data = bytearray(data)
    field = draw(st.sampled_from(["magic", "type", "ndim", "size"]))
    if field == "magic":
        data[draw(st.integers(0, 1))] = draw(st.integers(1, 255))
    elif field == "type":
        data[2] = draw(st.sampled_from([0x00, 0x07, 0x0A, 0x0F, 0xFF, *idx.TYPES]))
    elif field == "ndim":
        data[3] = draw(st.sampled_from([0, 1, 2, 3, 4, 5, 200, 255]))
    else:
        ndim = data[3]
        if ndim:
            at = 4 + 4 * draw(st.integers(0, ndim - 1))
            value = draw(st.sampled_from([0, 1, 2, 5, 1 << 16, 0x7FFFFFFF, 0xFFFFFFFF]) | st.integers(0, 2**32 - 1))
            data[at:at + 4] = value.to_bytes(4, "big")
    return bytes(data)


@st.composite
def damaged_idx_bytes(draw) -> bytes:
    data = idx.dumps(draw(idx_arrays()))
    if draw(st.booleans()):
        data = draw(idx_header_edits(data))
    if draw(st.booleans()):
        data = mutate_bytes(data, draw(byte_mutations))
    return data


def read_idx(data: bytes, gz: bool, damage_gz=None) -> np.ndarray | None:
    """``data`` written as an IDX file (gzip'd, its compressed bytes then mutated by ``damage_gz``) and read."""
    packed = gzip.compress(data, compresslevel=1) if gz else data
    if damage_gz:
        packed = mutate_bytes(packed, damage_gz)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / ("data-idx3-ubyte" + (".gz" if gz else ""))
        path.write_bytes(packed)
        return outcome(lambda: idx.read(path), str(path), size=len(packed) + len(data))


def check_valid_idx(array: np.ndarray, gz: bool) -> None:
    data = idx.dumps(array)
    assert_equal_arrays(outcome(lambda: idx.parse(data, "IDX data"), "IDX data", size=len(data)), array)
    assert_equal_arrays(read_idx(data, gz), array)


def check_idx_bytes(data: bytes, gz: bool, damage_gz=None) -> None:
    parsed = outcome(lambda: idx.parse(data, "fuzzed IDX"), "fuzzed IDX", size=len(data))
    got = read_idx(data, gz, damage_gz)
    if damage_gz is None:  # the same bytes, read from a file: the same verdict and the same array
        assert (parsed is None) == (got is None)
        if got is not None:
            assert_equal_arrays(got, parsed)


@st.composite
def idx_folders(draw) -> dict[str, np.ndarray]:
    """LeCun's four files: images ``(n, h, w)`` uint8 and labels uint8, n of at least 2 in training."""
    n_train, n_test, h, w = draw(st.integers(2, 6)), draw(st.integers(1, 4)), draw(st.integers(1, 3)), \
        draw(st.integers(1, 3))
    pixels = hnp.arrays(np.uint8, (n_train, h, w)), hnp.arrays(np.uint8, (n_test, h, w))
    return {"train-images-idx3-ubyte": draw(pixels[0]), "train-labels-idx1-ubyte": draw(labels(n_train, np.uint8)),
            "t10k-images-idx3-ubyte": draw(pixels[1]), "t10k-labels-idx1-ubyte": draw(labels(n_test, np.uint8))}


def load_idx_folder(files: dict[str, bytes], gz: bool):
    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / "f").mkdir()
        for name, data in files.items():
            (Path(folder) / "f" / (name + (".gz" if gz else ""))).write_bytes(gzip.compress(data, 1) if gz else data)
        size = sum(len(d) for d in files.values())
        splits = outcome(lambda: loaders.load({"kind": "idx", "path": "f", "scale": 1 / 256, **BLOCK}, Path(folder)),
                         str(Path(folder) / "f"), size=size)
        if splits is not None:
            assert_splits_sound(splits)
            splits = {s: tuple(np.array(a) for a in splits.arrays[s]) for s in SPLITS}
    return splits


def check_valid_idx_folder(arrays: dict[str, np.ndarray], gz: bool) -> None:
    splits = load_idx_folder({name: idx.dumps(a) for name, a in arrays.items()}, gz)
    assert splits is not None, "a valid IDX folder was refused"
    x = arrays["train-images-idx3-ubyte"]
    x = np.multiply(x.reshape(len(x), -1), np.float32(1 / 256), dtype=np.float32)
    y = arrays["train-labels-idx1-ubyte"].astype(np.int64)
    tx = arrays["t10k-images-idx3-ubyte"]
    assert_equal_arrays(splits["train"][0], x[:-1])
    assert_equal_arrays(splits["valid"][1], y[-1:])
    assert_equal_arrays(splits["test"][0], np.multiply(tx.reshape(len(tx), -1), np.float32(1 / 256),
                                                       dtype=np.float32))


@st.composite
def damaged_idx_folders(draw) -> dict[str, bytes]:
    files = {name: idx.dumps(a) for name, a in draw(idx_folders()).items()}
    name = draw(st.sampled_from(sorted(files)))
    if draw(st.booleans()):
        files[name] = draw(damaged_idx_bytes())
    else:
        files[name] = idx.dumps(draw(idx_arrays()) if draw(st.booleans()) else draw(odd_arrays().filter(
            lambda a: isinstance(a, np.ndarray) and a.dtype.newbyteorder("=") in IDX_DTYPES)))
    return files


# -- parameter files -----------------------------------------------------------------------------------------

NAMES = st.text(st.characters(codec="utf-8"), min_size=1, max_size=12)


@st.composite
def parameters(draw) -> dict[str, np.ndarray]:
    return draw(st.dictionaries(NAMES, hnp.arrays(st.sampled_from([np.float32, np.float64, np.float16]),
                                                  hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4)),
                                max_size=4))


META = st.dictionaries(st.text(max_size=8), st.one_of(st.none(), st.integers(), st.text(max_size=20),
                                                      st.lists(st.text(max_size=5), max_size=3)), max_size=4)


def load_params_file(data: bytes):
    from dltspec.training import params

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "p.best.pkl"
        path.write_bytes(data)
        loaded = outcome(lambda: params.load(path), str(path), size=len(data))
    if loaded is not None:
        values, meta = loaded
        assert isinstance(values, dict) and isinstance(meta, dict)
        assert all(isinstance(k, str) and isinstance(v, np.ndarray) and v.dtype.kind == "f"
                   for k, v in values.items())
        params.mismatch({"output.W": (2, 2)}, values)  # what a model check does with them
    return loaded


def check_valid_params(values: dict, meta: dict) -> None:
    from dltspec.training import params

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "p.best.pkl"
        params.save(path, values, meta)
        data = path.read_bytes()
    loaded = load_params_file(data)
    assert loaded is not None, "a parameter file written by save was refused"
    back, back_meta = loaded
    assert back_meta == meta and set(back) == set(values)
    for name, value in values.items():
        assert_equal_arrays(back[name], value)


@st.composite
def odd_param_objects(draw):
    from dltspec.training import params

    values = dict(draw(parameters()))
    obj = {"format": params.FORMAT, "params": values, "meta": draw(META)}
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["format", "params", "value", "name", "meta", "container"]))
        if kind == "format":
            obj["format"] = draw(st.sampled_from([None, "dltspec.params/0", 1, np.array(["a", "b"]),
                                                  np.array(params.FORMAT), [params.FORMAT]]))
        elif kind == "params":
            obj["params"] = draw(st.sampled_from([None, [], [np.ones(2)], "W", np.ones(3)]))
        elif kind == "value" and isinstance(obj["params"], dict):
            obj["params"][draw(NAMES)] = draw(st.one_of(odd_arrays(), st.sampled_from(NOT_ARRAYS)))
        elif kind == "name" and isinstance(obj["params"], dict):
            obj["params"][draw(st.sampled_from([1, 2.5, None, (1, 2), b"W", ("a",)]))] = np.ones(2)
        elif kind == "meta":
            obj["meta"] = draw(st.sampled_from([None, [], "meta", 3, np.ones(2)]))
        else:
            obj = draw(st.sampled_from([[obj], (obj,), None, values, {"format": obj["format"]}]))
            break
    return obj


def check_params_bytes(data: bytes) -> None:
    load_params_file(data)


# -- predict's inputs: images and .npy arrays ----------------------------------------------------------------

def png_bytes(pixels: np.ndarray, mode: str = "L") -> bytes:
    from PIL import Image

    image = Image.fromarray(pixels).convert(mode) if mode != "L" else Image.fromarray(pixels, "L")
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


grey_images = hnp.arrays(np.uint8, hnp.array_shapes(min_dims=2, max_dims=2, min_side=1, max_side=12))
INVERT = st.sampled_from(["auto", "yes", "no"])
SCALES = st.sampled_from([1 / 256, 1 / 255, 1.0, 0.5])


def read_image(data: bytes, shape: tuple[int, int, int], scale: float, invert: str, suffix: str = ".png"):
    from dltspec import predict

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"digit{suffix}"
        path.write_bytes(data)
        x = outcome(lambda: predict.image_examples(path, shape, scale, invert), str(path), size=len(data))
    if x is not None:
        assert x.dtype == np.float32 and x.shape == (1, shape[1] * shape[2])
        assert np.isfinite(x).all() and (x >= 0).all() and (x <= 255 * scale + 1e-6).all()
    return x


def check_valid_png(pixels: np.ndarray, scale: float, invert: str) -> None:
    x = read_image(png_bytes(pixels), (1, *pixels.shape), scale, invert)
    assert x is not None, "a valid PNG was refused"
    grey = pixels.astype(np.float64)
    if invert == "yes" or (invert == "auto" and grey.mean() > 127.5):
        grey = 255 - grey
    assert_equal_arrays(x, (grey * scale).astype(np.float32).reshape(1, -1))


@st.composite
def damaged_pngs(draw) -> bytes:
    data = png_bytes(draw(grey_images), draw(st.sampled_from(["L", "RGB", "RGBA", "LA", "P", "1", "I;16"])))
    return mutate_bytes(data, draw(byte_mutations)) if draw(st.booleans()) or len(data) > 4000 else data


def check_png_bytes(data: bytes, side: int, invert: str) -> None:
    read_image(data, (1, side, side), 1 / 256, invert)


def read_npy_input(data: bytes, n_in: int):
    from dltspec import predict

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "input.npy"
        path.write_bytes(data)
        x = outcome(lambda: predict.array_examples(path, n_in), str(path), size=len(data))
    if x is not None:
        assert x.dtype == np.float32 and x.ndim == 2 and x.shape[1] == n_in
    return x


def check_valid_npy_input(array: np.ndarray) -> None:
    """An input read as written; one with values that are not finite in float32 refused."""
    n_in = int(np.prod(array.shape[1:])) if array.ndim >= 2 else array.size
    x = read_npy_input(npy_bytes(array), n_in)
    with np.errstate(over="ignore"):
        expected = array.reshape(-1, n_in).astype(np.float32)
    if not np.isfinite(expected).all():
        assert x is None, "an input with values that are not finite in float32 was read"
    else:
        assert x is not None, "a valid .npy input was refused"
        assert_equal_arrays(x, expected)


@st.composite
def damaged_npy_inputs(draw) -> bytes:
    array = draw(st.one_of(odd_arrays(), hnp.arrays(np.float32, (draw(st.integers(0, 3)), 4))))
    data = npy_bytes(np.asarray(array))
    if draw(st.booleans()):
        data = edit_npy_header(data, *draw(npy_header_edits))
    if draw(st.booleans()):
        data = mutate_bytes(data, draw(byte_mutations))
    return data
