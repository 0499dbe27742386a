"""Data larger than device memory (digest §2, last point): a split held a chunk of minibatches at a time.

When the data does not fit the memory budget (``run { device_memory = "256MB" }`` or
``dltspec run --device-memory 256MB``), the compiled program keeps one chunk of several
minibatches of the training split on the device, trains on it, then puts the next chunk in its
place; validation and test are evaluated the same way. The minibatches, their order and the
updates are those of the resident run, so the parameters come out bit-identical.

When the source is a memory-mapped ``.npy`` file of floatX rows, a chunk is the mapping's pages
themselves (JAX on the CPU uses them without a copy), dropped from the process's memory with
``madvise`` once the chunk is done; other mapped files, and every chunk that the JAX path keeps
batch-last (:mod:`dltspec.backends.layout`), are read with ``pread`` into page-aligned buffers. Either way
the host holds about one chunk, not the pages of the whole file.
"""
from __future__ import annotations

import mmap
import os
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from dltspec.diagnostics import DltspecError

UNITS = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "kib": 2**10, "mib": 2**20, "gib": 2**30}
SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMG]i?B|B)?\s*$", re.IGNORECASE)


class SizeError(DltspecError, ValueError):
    """A memory size that cannot be read."""


def parse_size(text: str | int) -> int:
    """Bytes in ``"256MB"``, ``"1.5GiB"``, ``"1000000"`` (kB, MB, GB are powers of 1000; KiB, MiB, GiB of 1024)."""
    if isinstance(text, int):
        return text
    match = SIZE.match(str(text))
    if not match:
        raise SizeError(f"'{text}' is not a memory size (e.g. 256MB, 1.5GiB)")
    return int(float(match[1]) * UNITS[(match[2] or "").lower()])


def file_position(array: np.ndarray) -> int | None:
    """Where ``array``'s first byte is in its file, for a contiguous view of a ``np.memmap``; else ``None``.
    (A view keeps its parent's ``offset``, so the position comes from the mapping's address.)"""
    mapping = getattr(array, "_mmap", None)
    if mapping is None or not array.flags.c_contiguous or not getattr(array, "filename", None):
        return None
    base = np.frombuffer(mapping, dtype=np.uint8).ctypes.data
    aligned = array.offset - array.offset % mmap.ALLOCATIONGRANULARITY  # where the mapping starts in the file
    return aligned + (array.ctypes.data - base)


ALIGNMENT = 4096  # a page: JAX on the CPU then uses the buffer as it is, without a copy


def aligned_empty(shape: tuple, dtype) -> np.ndarray:
    """An uninitialised array whose data starts on a page boundary."""
    dtype = np.dtype(dtype)
    n = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    raw = np.empty(n + ALIGNMENT, dtype=np.uint8)
    skip = -raw.ctypes.data % ALIGNMENT
    return raw[skip:skip + n].view(dtype).reshape(shape)


def read_rows(array: np.ndarray, start: int, stop: int) -> np.ndarray:
    """Rows ``start:stop`` of ``array`` as a new in-memory array: read from the file when ``array`` is a
    contiguous view of a ``np.memmap`` (no page of the mapping is touched), else copied."""
    position = file_position(array)
    if position is None:
        out = aligned_empty((stop - start,) + array.shape[1:], array.dtype)
        out[...] = array[start:stop]
        return out
    row = int(np.prod(array.shape[1:], dtype=np.int64)) * array.dtype.itemsize
    out = aligned_empty((stop - start,) + array.shape[1:], array.dtype)
    view = memoryview(out.reshape(-1).view(np.uint8))
    with open(array.filename, "rb", buffering=0) as f:
        done, offset = 0, position + start * row
        while done < len(view):
            n = os.preadv(f.fileno(), [view[done:]], offset + done)
            if n <= 0:
                raise OSError(f"{array.filename}: unexpected end of file")
            done += n
    return out


@dataclass(frozen=True)
class Chunks:
    """A split's full minibatches, ``per_chunk`` of them at a time."""

    x: np.ndarray  # (examples, features), on the host; may be memory-mapped
    y: np.ndarray
    batch_size: int
    per_chunk: int

    @property
    def n_batches(self) -> int:
        return len(self.y) // self.batch_size

    @property
    def n_chunks(self) -> int:
        return -(-self.n_batches // self.per_chunk)

    def of(self, minibatch: int) -> int:
        return minibatch // self.per_chunk

    def first(self, chunk: int) -> int:
        return chunk * self.per_chunk

    def size(self, chunk: int) -> int:
        return min(self.per_chunk, self.n_batches - self.first(chunk))

    def rows(self, chunk: int) -> tuple[np.ndarray, np.ndarray]:
        """The chunk's rows of ``x`` and ``y`` as views of the source (nothing read yet)."""
        start = self.first(chunk) * self.batch_size
        stop = start + self.size(chunk) * self.batch_size
        return self.x[start:stop], self.y[start:stop]

    def labels(self, chunk: int, padded: bool = False) -> np.ndarray:
        """The chunk's labels as int32 ``(minibatches, batch_size)``; ``padded``: see :meth:`read`."""
        y = np.asarray(self.rows(chunk)[1], dtype=np.int32).reshape(-1, self.batch_size)
        if padded and len(y) < self.per_chunk:
            y = np.concatenate([y, np.zeros((self.per_chunk - len(y), self.batch_size), y.dtype)])
        return y

    def read(self, chunk: int, floatX: str, padded: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """The chunk's minibatches: x ``(minibatches, batch_size, features)`` as floatX, y int32;
        ``padded``: always ``per_chunk`` minibatches, zeros after the last (every chunk one shape,
        so a JIT compiles once; the padding is never trained on or counted)."""
        rows, _ = self.rows(chunk)
        if self.mapped_as(floatX) and not (padded and self.size(chunk) < self.per_chunk):
            x = np.asarray(rows)  # the mapped pages themselves: no copy (see release)
        else:
            x = read_rows(rows, 0, len(rows)).astype(floatX, copy=False)
        x = x.reshape(-1, self.batch_size, x.shape[1])
        if padded and len(x) < self.per_chunk:
            x = np.concatenate([x, np.zeros((self.per_chunk - len(x),) + x.shape[1:], x.dtype)])
        return x, self.labels(chunk, padded)


    def mapped_as(self, floatX: str) -> bool:
        """Whether chunks can be the file's mapped pages as they are (a mapped file of ``floatX`` rows)."""
        return self.x.dtype == np.dtype(floatX) and file_position(self.x) is not None

    def release(self, chunk: int) -> None:
        """Drop the pages of ``chunk`` from this process's memory (they stay in the page cache, and
        come back from it if touched again), so that reading a mapped file keeps host memory bounded."""
        if not isinstance(self.x, np.memmap) or getattr(self.x, "_mmap", None) is None:
            return
        mapping = self.x._mmap
        row = int(np.prod(self.x.shape[1:], dtype=np.int64)) * self.x.dtype.itemsize
        base = np.frombuffer(mapping, dtype=np.uint8).ctypes.data
        begin = self.x.ctypes.data - base + self.first(chunk) * self.batch_size * row
        end = begin + self.size(chunk) * self.batch_size * row
        page = mmap.PAGESIZE
        begin, end = begin // page * page, min(-(-end // page) * page, len(mapping))
        if end > begin and hasattr(mapping, "madvise"):
            mapping.madvise(mmap.MADV_DONTNEED, begin, end - begin)


def batch_bytes(n_in: int, batch_size: int, floatX: str) -> int:
    """Device bytes of one minibatch: its x in floatX and its int32 labels."""
    return batch_size * (n_in * np.dtype(floatX).itemsize + 4)


def per_chunk(budget: int, n_in: int, batch_size: int, floatX: str, buffers: int = 2) -> int:
    """Minibatches in a chunk when ``buffers`` chunks share the budget (a training chunk and an
    evaluation chunk; a third when the next training chunk is read while the current one trains)."""
    return max(1, budget // (buffers * batch_bytes(n_in, batch_size, floatX)))


def fits(sizes: dict[str, int], n_in: int, batch_size: int, floatX: str, budget: int | None) -> bool:
    """Whether every split's full minibatches fit ``budget`` bytes at once (no budget: they do)."""
    if budget is None:
        return True
    return sum(n // batch_size for n in sizes.values()) * batch_bytes(n_in, batch_size, floatX) <= budget


def chunked(arrays: dict[str, tuple[np.ndarray, np.ndarray]], used: tuple[str, ...], batch_size: int, floatX: str,
            budget: int | None, buffers: int = 2) -> dict[str, Chunks] | None:
    """The splits in ``used`` as :class:`Chunks` when they do not all fit ``budget`` bytes (``buffers``
    chunks sharing it, see :func:`per_chunk`); ``None`` when they fit."""
    n_in = arrays[used[0]][0].shape[1]
    if fits({s: len(arrays[s][1]) for s in used}, n_in, batch_size, floatX, budget):
        return None
    m = per_chunk(budget, n_in, batch_size, floatX, buffers)
    return {s: Chunks(*arrays[s], batch_size, m) for s in used}


def in_memory(x: np.ndarray, start: int, stop: int) -> np.ndarray:
    """Rows ``start:stop`` of ``x`` in memory: read from the file when ``x`` is a mapped view (its pages
    are never mapped in, so host memory stays bounded), else the slice itself (no copy)."""
    return read_rows(x, start, stop) if file_position(x) is not None else x[start:stop]


def row_blocks(x: np.ndarray, rows: int):
    """``x`` in blocks of ``rows`` rows, each :func:`in_memory`."""
    for start in range(0, len(x), rows):
        yield in_memory(x, start, min(start + rows, len(x)))


def batch_last(x: np.ndarray, batch_size: int, floatX: str, n_batches: int | None = None,
               rows: int = 1 << 11) -> np.ndarray:
    """The full minibatches of ``x`` ``(examples, n_in)`` as a page-aligned ``(n_batches, n_in, batch_size)``
    array of ``floatX``; ``n_batches`` more than ``x`` holds: zeros after the last.

    Blocks of ``rows`` rows are copied by a thread per core (numpy copies without the GIL; on two
    cores MNIST's training split took 0.19 s instead of 0.34 s, most of it the first touch of the new
    pages); a view of a mapped file is read from the file, its pages never mapped in. The layout is
    :mod:`dltspec.backends.layout`'s."""
    full = len(x) // batch_size
    out = aligned_empty((max(full, n_batches or 0), x.shape[1], batch_size), floatX)
    out[full:] = 0
    per = max(1, rows // batch_size)  # minibatches a block

    def fill(first: int) -> None:
        block = in_memory(x, first * batch_size, min(first + per, full) * batch_size)
        out[first:first + len(block) // batch_size] = block.reshape(-1, batch_size, x.shape[1]).transpose(0, 2, 1)

    with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1), thread_name_prefix="dltspec-batch-last") as pool:
        list(pool.map(fill, range(0, full, per)))
    return out
