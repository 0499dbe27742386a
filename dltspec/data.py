"""Data sets: each ``dataset`` kind is a small loader in :data:`DATASETS`.

A loader returns :class:`Splits` (train, validation and test arrays, x as
float32 ``(n, features)`` and y as int64 labels). Problems are raised as
:class:`DataError` naming the dataset key they concern, so the caller can
locate them in the spec. Nothing here imports PyTensor.
"""
from __future__ import annotations

import gzip
import hashlib
import os
import pickle
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from . import safe_pickle
from .spec import SPLITS

DATA_ENV = "DLTSPEC_DATA"


class DataError(Exception):
    """A problem with a data set, reported at ``dataset.<key>`` (or the block)."""

    def __init__(self, code: str, message: str, key: str | None = None, notes: tuple[str, ...] = ()):
        super().__init__(message)
        self.code, self.message, self.key, self.notes = code, message, key, notes


@dataclass(frozen=True)
class Splits:
    """The three splits: ``arrays[split] = (x, y)``; ``available`` counts examples before slicing."""

    arrays: dict[str, tuple[np.ndarray, np.ndarray]]
    available: dict[str, int]

    @property
    def n_in(self) -> int:
        return int(self.arrays["train"][0].shape[1])

    @property
    def n_classes(self) -> int:
        return int(max(y.max() for _, y in self.arrays.values() if len(y))) + 1

    def size(self, split: str) -> int:
        return len(self.arrays[split][1])


def search_dirs(base_dir: Path) -> list[Path]:
    """Where a relative data path is looked up: the spec's directory, then ``$DLTSPEC_DATA``."""
    extra = [Path(p) for p in os.environ.get(DATA_ENV, "").split(os.pathsep) if p]
    return [Path(base_dir)] + extra


def resolve(path: str, base_dir: Path) -> Path:
    """The data file ``path`` names, or a :class:`DataError` listing every place searched."""
    try:
        candidate = Path(path).expanduser()
    except RuntimeError:  # ~user that does not exist
        candidate = Path(path)
    tried = [candidate] if candidate.is_absolute() else [d / candidate for d in search_dirs(base_dir)]
    for place in tried:
        if place.is_file():
            return place
    where = ", ".join(str(p) for p in tried)
    hint = "" if candidate.is_absolute() else f" (set {DATA_ENV} to add directories)"
    raise DataError("DLT401", f"data file '{path}' not found; looked in: {where}{hint}", "path")


def tutorial_splits(obj) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Check and convert the tutorial's ``((x, y), (x, y), (x, y))`` structure."""
    if not isinstance(obj, (tuple, list)) or len(obj) != 3:
        got = f"a {type(obj).__name__} of {len(obj)}" if isinstance(obj, (tuple, list, dict)) else type(obj).__name__
        raise DataError("DLT402", f"expected a pickle of three (x, y) pairs (train, valid, test), got {got}", "path")
    arrays = {}
    for split, pair in zip(SPLITS, obj):
        if not isinstance(pair, (tuple, list)) or len(pair) != 2:
            raise DataError("DLT402", f"the {split} split must be an (x, y) pair", "path")
        x, y = (np.asarray(a) for a in pair)
        arrays[split] = checked_split(split, x, y)
    return arrays


def checked_split(split: str, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if x.dtype.kind not in "biuf" or y.dtype.kind not in "biuf":
        raise DataError("DLT402", f"the {split} split must hold numbers, got x of {x.dtype} and y of {y.dtype}",
                        "path")
    if x.ndim != 2 or x.shape[1] < 1:
        raise DataError("DLT402", f"{split} x must have shape (examples, features), got {x.shape}", "path")
    if y.ndim != 1 or len(y) != len(x):
        raise DataError("DLT402", f"{split} y must have one label per example: x has {len(x)} rows, "
                        f"y has shape {y.shape}", "path")
    if not np.all(np.isfinite(x)):
        raise DataError("DLT402", f"{split} x contains NaN or infinite values", "path")
    if len(y) and (not np.all(np.equal(np.mod(y, 1), 0)) or y.min() < 0):
        raise DataError("DLT402", f"{split} labels must be non-negative integers", "path")
    return x.astype(np.float32, copy=False), y.astype(np.int64, copy=False)


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


def load_tutorial_pickle(block: dict, base_dir: Path) -> Splits:
    """``dataset mnist`` / ``dataset pickle``: the tutorial's ``((x, y), (x, y), (x, y))`` pickle."""
    path = resolve(block["path"], base_dir)
    return sliced(cached(path, lambda: tutorial_splits(read_pickle(path))), block)


#: bump when the cached layout changes
CACHE_FORMAT = 1


def cache_key(path: Path) -> str:
    """Names a data file's cache folder: its absolute path (one folder a file, replaced when it changes)."""
    return hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:20]


def cache_stamp(path: Path) -> str:
    """What the cached arrays were converted from: the file's size and modification time, and the layout."""
    stat = path.stat()
    return f"{stat.st_size} {stat.st_mtime_ns} {CACHE_FORMAT}\n"


def cached(path: Path, convert: Callable[[], dict]) -> dict:
    """The checked arrays of a data file, converted once and kept as ``.npy`` files in the cache.

    Unpacking MNIST's gzip'd pickle takes about 2 s; mapping the cached arrays takes milliseconds,
    and their pages are shared and reclaimable. One folder a data file (``$DLTSPEC_CACHE_DIR/data``,
    see :func:`dltspec.files.cache_dir`), stamped with the file's size and modification time and
    replaced when they change, written atomically, and skipped when it cannot be written.
    """
    from .files import cache_dir

    folder = cache_dir() / "data" / cache_key(path)
    names = [f"{split}_{part}.npy" for split in SPLITS for part in "xy"]
    stamp = cache_stamp(path)
    try:
        if (folder / "source").read_text() != stamp:
            raise ValueError("stale")
        loaded = [np.load(folder / name, mmap_mode="r", allow_pickle=False) for name in names]
        return {split: (loaded[2 * i], loaded[2 * i + 1]) for i, split in enumerate(SPLITS)}
    except (OSError, ValueError):
        if folder.exists():  # stale or damaged: convert again and replace it
            import shutil

            shutil.rmtree(folder, ignore_errors=True)
    arrays = convert()
    try:
        store(folder, dict(zip(names, (a for split in SPLITS for a in arrays[split]))), stamp)
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


def load_digits(block: dict, base_dir: Path) -> Splits:
    """``dataset digits``: scikit-learn's bundled 8x8 digits, shuffled with ``seed`` and split."""
    try:
        from sklearn.datasets import load_digits as sk_load_digits
    except ImportError:  # pragma: no cover - scikit-learn is a core dependency
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


DATASETS: dict[str, Callable[[dict, Path], Splits]] = {
    "mnist": load_tutorial_pickle,
    "pickle": load_tutorial_pickle,
    "digits": load_digits,
}


def load(block: dict, base_dir: Path) -> Splits:
    """Load the data set a validated ``dataset`` block declares."""
    return DATASETS[block["kind"]](block, Path(base_dir))
