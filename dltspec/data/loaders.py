"""Data sets: each ``dataset`` kind is a small loader here, named by its record in :data:`dltspec.data.kinds.KINDS`.

A loader returns :class:`Splits` (train, validation and test arrays, x as
float32 ``(n, features)`` and y as int64 labels). Problems are raised as
:class:`DataError` naming the dataset key they concern, so the caller can
locate them in the spec. Nothing here imports PyTensor.
"""
from __future__ import annotations

import gzip
import hashlib
import lzma
import os
import pickle
import struct
import sys
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from dltspec import interrupts
from dltspec.data import npy, safe_pickle
from dltspec.data.checks import MAX_LABEL, DataError, checked_split, labels_problem, rows  # noqa: F401 - DataError: here too
from dltspec.data.kinds import KINDS
from dltspec.lang.spec import SPLITS

DATA_ENV = "DLTSPEC_DATA"


@dataclass(frozen=True)
class Splits:
    """The three splits: ``arrays[split] = (x, y)``; ``available`` counts examples before slicing."""

    arrays: dict[str, tuple[np.ndarray, np.ndarray]]
    available: dict[str, int]
    source: Path | None = None  # the file or folder read (None: a bundled data set)

    @property
    def n_in(self) -> int:
        return int(self.arrays["train"][0].shape[1])

    @property
    def n_classes(self) -> int:
        return int(max(y.max() for _, y in self.arrays.values() if len(y))) + 1

    def size(self, split: str) -> int:
        return len(self.arrays[split][1])

    def n_out(self, classifier: dict) -> int:
        """The classifier's number of classes: its ``n_out``, else the data's (at least 2)."""
        return classifier.get("n_out") or max(self.n_classes, 2)


def search_dirs(base_dir: Path) -> list[Path]:
    """Where a relative data path is looked up: the spec's directory, then ``$DLTSPEC_DATA``."""
    extra = [Path(p) for p in os.environ.get(DATA_ENV, "").split(os.pathsep) if p]
    return [Path(base_dir)] + extra


def resolve(path: str, base_dir: Path, directory: bool = False) -> Path:
    """The data file (or ``directory``) ``path`` names, or a :class:`DataError` listing every place searched."""
    try:
        candidate = Path(path).expanduser()
    except RuntimeError:  # ~user that does not exist
        candidate = Path(path)
    tried = [candidate] if candidate.is_absolute() else [d / candidate for d in search_dirs(base_dir)]
    for place in tried:
        if place.is_dir() if directory else place.is_file():
            return place
    where = ", ".join(str(p) for p in tried)
    hint = "" if candidate.is_absolute() else f" (set {DATA_ENV} to add directories)"
    what = "data directory" if directory else "data file"
    raise DataError("DLT401", f"{what} '{path}' not found; looked in: {where}{hint}", "path")


def tutorial_splits(obj) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Check and convert the tutorial's ``((x, y), (x, y), (x, y))`` structure."""
    if not isinstance(obj, (tuple, list)) or len(obj) != 3:
        got = f"a {type(obj).__name__} of {len(obj)}" if isinstance(obj, (tuple, list, dict)) else type(obj).__name__
        raise DataError("DLT402", f"expected a pickle of three (x, y) pairs (train, valid, test), got {got}", "path")
    arrays = {}
    for split, pair in zip(SPLITS, obj):
        if not isinstance(pair, (tuple, list)) or len(pair) != 2:
            raise DataError("DLT402", f"the {split} split must be an (x, y) pair", "path")
        try:
            x, y = (np.asarray(a) for a in pair)
        except (ValueError, TypeError, OverflowError, RecursionError) as exc:  # ragged lists, odd objects
            raise DataError("DLT402", f"the {split} split's x and y must be arrays: {exc}", "path") from None
        arrays[split] = checked_split(split, x, y)
    widths = {split: x.shape[1] for split, (x, _) in arrays.items()}
    if len(set(widths.values())) > 1:
        raise DataError("DLT402", "the splits have different numbers of features: " + ", ".join(
            f"{split} {n}" for split, n in widths.items()), "path")
    return arrays


def read_pickle(path: Path):
    try:
        return safe_pickle.load(path)
    except safe_pickle.UnsafePickle as exc:
        raise DataError("DLT403", f"{path}: {exc}", "path") from None
    except (OSError, EOFError, pickle.UnpicklingError, gzip.BadGzipFile, zlib.error, ValueError,
            TypeError, AttributeError, IndexError, KeyError) as exc:
        raise DataError("DLT402", f"cannot read {path} as a pickle: {exc}", "path") from None


def sliced(arrays: dict, block: dict) -> Splits:
    """Keep the first ``n_<split>`` examples of each split where the block asks for it."""
    available = {s: len(arrays[s][1]) for s in SPLITS}
    empty = [s for s in SPLITS if available[s] == 0]
    if empty:
        key = {"valid": "valid_fraction", "test": "test_fraction"}.get(empty[0], "path")
        raise DataError("DLT306", f"the {' and '.join(empty)} split{'s are' if len(empty) > 1 else ' is'} empty",
                        key if block["kind"] == "digits" else "path")
    out = {}
    for split in SPLITS:
        n = block.get(f"n_{split}")
        if n is not None and n > available[split]:
            raise DataError("DLT306", f"n_{split} = {n} but the {split} split has only {available[split]} "
                            "examples", f"n_{split}")
        x, y = arrays[split]
        out[split] = (x[:n], y[:n]) if n is not None else (x, y)
    return Splits(out, available)


def load_tutorial_pickle(block: dict, base_dir: Path, download: bool = False) -> Splits:
    """``dataset pickle``: the tutorial's ``((x, y), (x, y), (x, y))`` pickle."""
    path = resolve(block["path"], base_dir)
    return replace(sliced(cached(path, lambda: tutorial_splits(read_pickle(path))), block), source=path)


def load_mnist(block: dict, base_dir: Path, download: bool = False) -> Splits:
    """``dataset mnist``: the tutorial's pickle; where it is missing, the IDX files fetched into the cache
    (the same arrays), downloaded first when ``download`` allows it."""
    from dltspec.data.fetch import FetchError, default_dir, fetch_mnist

    try:
        return load_tutorial_pickle(block, base_dir)
    except DataError as missing:
        if missing.code != "DLT401":
            raise
        fetched = default_dir()
        try:
            idx_files(fetched)  # gzip'd or not, as dataset idx reads them
        except DataError:
            if not download:
                raise DataError("DLT401", missing.message, "path", (
                    "`dltspec fetch mnist` downloads MNIST (or pass --download to `dltspec run`); "
                    "the same arrays are then read from its IDX files",)) from None
            try:
                fetch_mnist(fetched, say=lambda line: print(line, file=sys.stderr))
            except FetchError as exc:
                raise DataError("DLT401", f"{missing.message}; downloading it failed: {exc}", "path") from None
        return mnist_from_idx(fetched, block)


#: bump when the cached layout changes
CACHE_FORMAT = 1


def cache_key(path: Path) -> str:
    """Names a data file's cache folder: its absolute path (one folder a file, replaced when it changes)."""
    return hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:20]


def cache_stamp(paths: list[Path]) -> str:
    """What the cached arrays were converted from: each file's size and modification time, and the layout."""
    stats = [p.stat() for p in paths]
    return "".join(f"{s.st_size} {s.st_mtime_ns} " for s in stats) + f"{CACHE_FORMAT}\n"


def cached(path: Path | list[Path], convert: Callable[[], dict], parts: tuple[str, ...] = SPLITS) -> dict:
    """The checked arrays of a data file, converted once and kept as ``.npy`` files in the cache.

    Unpacking MNIST's gzip'd pickle takes about 2 s; mapping the cached arrays takes milliseconds,
    and their pages are shared and reclaimable. One folder a data file (``$DLTSPEC_CACHE_DIR/data``,
    see :func:`dltspec.files.cache_dir`), stamped with the file's size and modification time and
    replaced when they change, written atomically, and skipped when it cannot be written.
    """
    from dltspec.files import cache_dir

    paths = path if isinstance(path, list) else [path]
    folder = cache_dir() / "data" / cache_key(paths[0])
    names = [f"{split}_{part}.npy" for split in parts for part in "xy"]
    stamp = cache_stamp(paths)
    try:
        if (folder / "source").read_text() != stamp:
            raise ValueError("stale")
        loaded = [np.load(folder / name, mmap_mode="r", allow_pickle=False) for name in names]
        return {split: (loaded[2 * i], loaded[2 * i + 1]) for i, split in enumerate(parts)}
    except (OSError, ValueError):
        if folder.exists():  # stale or damaged: convert again and replace it
            import shutil

            shutil.rmtree(folder, ignore_errors=True)
    arrays = convert()
    try:
        store(folder, dict(zip(names, (a for split in parts for a in arrays[split]))), stamp)
    except OSError:
        pass  # a read-only or full cache: use the arrays in memory
    return arrays


def store(folder: Path, arrays: dict[str, np.ndarray], stamp: str) -> None:
    """Write ``arrays`` as ``.npy`` files and the ``stamp`` into ``folder``, all or nothing (a temporary
    folder renamed)."""
    import shutil
    import tempfile

    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        for name, array in arrays.items():
            np.save(tmp / name, array, allow_pickle=False)
        (tmp / "source").write_text(stamp)
        os.replace(tmp, folder)
    except OSError:
        if folder.is_dir():  # another process stored it first
            return
        raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def load_digits(block: dict, base_dir: Path, download: bool = False) -> Splits:
    """``dataset digits``: scikit-learn's bundled 8x8 digits, shuffled with ``seed`` and split."""
    try:  # a Ctrl-C in the middle of SciPy's native libraries loading would surface as an ImportError
        with interrupts.deferred():
            from sklearn.datasets import load_digits as sk_load_digits
    except ImportError:
        interrupts.check()  # a signal during the import: the interrupt it is, not a missing package
        raise DataError("DLT402", "dataset digits needs scikit-learn: pip install scikit-learn") from None
    bunch = sk_load_digits()
    x = (bunch.data / 16.0).astype(np.float32)
    y = bunch.target.astype(np.int64)
    order = np.random.RandomState(block["seed"]).permutation(len(y))
    n_valid = int(round(len(y) * block["valid_fraction"]))
    n_test = int(round(len(y) * block["test_fraction"]))
    n_train = len(y) - n_valid - n_test
    if n_train < 1:
        raise DataError("DLT306", f"valid_fraction + test_fraction leave no training examples "
                        f"(of {len(y)})", "valid_fraction")
    parts = np.split(order, [n_train, n_train + n_valid])
    return sliced({s: (x[idx], y[idx]) for s, idx in zip(SPLITS, parts)}, block)


# -- sources with named arrays: IDX files, .npz archives, .npy files ------------------------------

#: LeCun's file names (each also found with ``.gz``) -> (part, x or y)
IDX_FILES = {"train-images-idx3-ubyte": ("train", "x"), "train-labels-idx1-ubyte": ("train", "y"),
             "t10k-images-idx3-ubyte": ("test", "x"), "t10k-labels-idx1-ubyte": ("test", "y")}


def idx_files(folder: Path) -> dict[str, Path]:
    """The four IDX files in ``folder`` (gzip'd or not); :class:`DataError` naming those missing."""
    found, missing = {}, []
    for name in IDX_FILES:
        candidates = [folder / f"{name}.gz", folder / name]
        hit = next((c for c in candidates if c.is_file()), None)
        if hit is None:
            missing.append(f"{name}[.gz]")
        else:
            found[name] = hit
    if missing:
        raise DataError("DLT401", f"{folder} lacks the IDX file(s) {', '.join(missing)}", "path",
                        ("`dltspec fetch mnist` downloads MNIST's four files",))
    return found


def idx_arrays(files: dict[str, Path]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Train and test as read from IDX: x as uint8 rows (examples, pixels), y as int64."""
    from dltspec.data.idx import IdxError, read

    parts: dict[str, dict[str, np.ndarray]] = {"train": {}, "test": {}}
    for name, path in files.items():
        part, role = IDX_FILES[name]
        try:
            array = read(path)
        except (IdxError, OSError) as exc:
            raise DataError("DLT402", f"cannot read {path}: {exc}", "path") from None
        if array.ndim == 0:
            raise DataError("DLT402", f"{path}: an IDX file of {'labels' if role == 'y' else 'images'} must have "
                            "one row per example, but it holds a single number (0 dimensions)", "path")
        if role == "y":
            problem = labels_problem(array)
            if problem:
                raise DataError("DLT402", f"{path}: labels must be integers from 0 to {MAX_LABEL}: {problem}", "path")
        parts[part][role] = rows(array) if role == "x" else array.astype(np.int64)
    for part, arrays in parts.items():
        if len(arrays["x"]) != len(arrays["y"]):
            raise DataError("DLT402", f"the {part} images and labels differ in number: {len(arrays['x'])} "
                            f"against {len(arrays['y'])}", "path")
    return {part: (a["x"], a["y"]) for part, a in parts.items()}


def npz_arrays(path: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``x_train, y_train, x_test, y_test`` and optionally ``x_valid, y_valid`` from an ``.npz`` archive, each
    member's header checked against its size before it is read (:mod:`dltspec.data.npy`)."""
    try:
        with zipfile.ZipFile(path) as archive:
            members = {info.filename.removesuffix(".npy"): info for info in archive.infolist()}
            parts = [p for p in SPLITS if {f"x_{p}", f"y_{p}"} <= set(members)]
            if not {"train", "test"} <= set(parts):
                raise DataError("DLT402", f"{path} must hold x_train, y_train, x_test, y_test (and optionally "
                                f"x_valid, y_valid); it holds {', '.join(sorted(members)) or 'nothing'}", "path")
            arrays = {}
            for name in (f"{role}_{p}" for p in parts for role in "xy"):
                info = members[name]
                with archive.open(info) as member:
                    arrays[name] = npy.read(member, info.file_size, f"member {info.filename}")
            return {p: (arrays[f"x_{p}"], arrays[f"y_{p}"]) for p in parts}
    except npy.NpyError as exc:
        raise DataError("DLT402", f"cannot read {path} as an .npz archive: {exc}", "path") from None
    except (OSError, ValueError, EOFError, zlib.error, lzma.LZMAError, zipfile.BadZipFile, NotImplementedError,
            RuntimeError, OverflowError, struct.error) as exc:  # a damaged archive, or a method zipfile lacks
        raise DataError("DLT402", f"cannot read {path} as an .npz archive: {npy.reason(exc)}", "path") from None



def npy_arrays(folder: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``x_<split>.npy`` and ``y_<split>.npy`` files in ``folder``, memory-mapped (valid optional), each
    header checked against its file's size first (:mod:`dltspec.data.npy`)."""
    parts = [p for p in SPLITS if (folder / f"x_{p}.npy").is_file() and (folder / f"y_{p}.npy").is_file()]
    if not {"train", "test"} <= set(parts):
        raise DataError("DLT401", f"{folder} must hold x_train.npy, y_train.npy, x_test.npy, y_test.npy "
                        "(and optionally x_valid.npy, y_valid.npy)", "path")
    try:
        return {p: (npy.mapped(folder / f"x_{p}.npy"), npy.mapped(folder / f"y_{p}.npy")) for p in parts}
    except npy.NpyError as exc:
        raise DataError("DLT402", f"cannot map the .npy files in {folder}: {exc}", "path") from None
    except (OSError, ValueError, OverflowError) as exc:
        raise DataError("DLT402", f"cannot map the .npy files in {folder}: {exc}", "path") from None


def validation_rows(n: int, block: dict) -> tuple[int, int]:
    """The rows ``[start, end)`` of a training source that become the validation split."""
    if block.get("valid_range") is not None:
        start, end = block["valid_range"]
        if not 0 <= start < end <= n:
            raise DataError("DLT306", f"valid_range [{start}, {end}] is not inside the training source's "
                            f"{n} rows", "valid_range")
        return start, end
    if block.get("valid_fraction") is not None:
        size = int(round(n * block["valid_fraction"]))
        key = "valid_fraction"
    else:
        size, key = block["valid_size"], "valid_size"
    if not 0 < size < n:
        raise DataError("DLT306", f"{key} leaves {n - size} of the training source's {n} rows for training",
                        key)
    return n - size, n


def prepared(arrays: dict[str, tuple[np.ndarray, np.ndarray]], block: dict) -> Splits:
    """The three splits from a source's arrays, as the block declares them: shuffled (``shuffle``,
    ``seed``), the validation split taken from the training source when the source has none
    (``valid_range``, ``valid_fraction`` or the last ``valid_size`` rows), scaled (``scale``),
    standardized per feature on the training split (``normalize``), checked, and sliced (``n_<split>``).
    Mapped arrays stay mapped unless a step has to compute new values."""
    for split, (sx, sy) in arrays.items():  # before any slice would cut the longer one to the shorter
        for role, a in (("x", sx), ("y", sy)):
            if not isinstance(a, np.ndarray) or a.ndim == 0 or a.dtype.kind not in "biuf":
                got = (f"a {a.dtype} array of shape {a.shape}" if isinstance(a, np.ndarray)
                       else f"{type(a).__name__} data (not an .npy array)")
                raise DataError("DLT402", f"{split} {role} must be an array of numbers, one row per example; got "
                                f"{got}", "path")
        if len(sx) != len(sy):
            raise DataError("DLT402", f"the {split} split has {len(sx)} examples in x but {len(sy)} labels in y",
                            "path")
    x, y = rows(arrays["train"][0]), arrays["train"][1]
    if block.get("shuffle"):
        order = np.random.RandomState(block["seed"]).permutation(len(y))
        x, y = x[order], y[order]
    splits = {"test": (rows(arrays["test"][0]), arrays["test"][1])}
    if "valid" in arrays:
        splits["train"], splits["valid"] = (x, y), (rows(arrays["valid"][0]), arrays["valid"][1])
    else:
        start, end = validation_rows(len(y), block)
        keep = np.r_[0:start, end:len(y)] if end < len(y) else slice(0, start)
        splits["train"], splits["valid"] = (x[keep], y[keep]), (x[start:end], y[start:end])
    kept = sliced(splits, block)  # n_<split> first: only what is used is scaled, checked and read
    scale = block.get("scale", 1)
    out = {}
    for split in SPLITS:
        sx, sy = kept.arrays[split]
        if scale != 1:  # a float64 source scaled in float64: a value beyond float32 is judged once scaled, not cast
            wide = sx.dtype.kind == "f" and sx.dtype.itemsize > 4
            sx = np.multiply(sx, scale if wide else np.float32(scale), dtype=np.float64 if wide else np.float32)
        out[split] = checked_split(split, sx, sy)
    widths = {split: sx.shape[1] for split, (sx, _) in out.items()}
    if len(set(widths.values())) > 1:
        raise DataError("DLT402", "the splits have different numbers of features: " + ", ".join(
            f"{split} {n}" for split, n in widths.items()), "path")
    if block.get("normalize", "none") == "standardize":
        mean, std = standardization(out["train"][0])
        out = {s: (((sx - mean) / std).astype(np.float32), sy) for s, (sx, sy) in out.items()}
    return Splits(out, kept.available)


def standardization(x: np.ndarray, chunk: int = 8192) -> tuple[np.ndarray, np.ndarray]:
    """Per-feature mean and standard deviation of ``x`` (a constant feature gets 1), in float64, by chunks."""
    from dltspec.data.stream import row_blocks

    total = np.zeros(x.shape[1])
    squares = np.zeros(x.shape[1])
    for block in row_blocks(x, chunk):
        part = np.asarray(block, dtype=np.float64)
        total += part.sum(axis=0)
        squares += np.square(part).sum(axis=0)
    mean = total / max(len(x), 1)
    std = np.sqrt(np.maximum(squares / max(len(x), 1) - mean ** 2, 0))
    return mean.astype(np.float32), np.where(std > 0, std, 1).astype(np.float32)


def load_idx(block: dict, base_dir: Path, download: bool = False) -> Splits:
    """``dataset idx``: a folder with LeCun's four IDX files (MNIST and look-alikes)."""
    folder = resolve(block["path"], base_dir, directory=True)
    files = idx_files(folder)
    splits = prepared(cached(list(files.values()), lambda: idx_arrays(files), parts=("train", "test")), block)
    return replace(splits, source=folder)


def mnist_from_idx(folder: Path, block: dict | None = None) -> Splits:
    """MNIST's IDX files in ``folder`` as the tutorial's splits (the arrays of ``mnist.pkl.gz``);
    ``block``'s ``n_<split>`` slices them."""
    return load_idx({**(block or {}), "kind": "idx", "path": str(folder), "valid_size": 10000, "scale": 1 / 256},
                    folder)


def load_npz(block: dict, base_dir: Path, download: bool = False) -> Splits:
    """``dataset npz``: named arrays in an ``.npz`` archive."""
    path = resolve(block["path"], base_dir)
    return replace(prepared(npz_arrays(path), block), source=path)


def load_npy(block: dict, base_dir: Path, download: bool = False) -> Splits:
    """``dataset npy``: ``x_<split>.npy``/``y_<split>.npy`` files in a folder, memory-mapped."""
    folder = resolve(block["path"], base_dir, directory=True)
    return replace(prepared(npy_arrays(folder), block), source=folder)


def load(block: dict, base_dir: Path, download: bool = False) -> Splits:
    """Load the data set a validated ``dataset`` block declares (``download``: fetch what is missing), with
    the loader its kind's record names."""
    loader = globals()[KINDS[block["kind"]].loader]
    return loader(block, Path(base_dir), download=download)
