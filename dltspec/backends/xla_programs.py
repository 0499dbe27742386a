"""The programs the XLA cache keeps, one per spec: what a warm JAX build starts from without PyTensor
(the parameters' and the optimizer state's names and initial values, the hyper-parameters, the data
layout, and per function the signatures seen and their executables' keys). See :mod:`dltspec.backends.xla_cache`.
"""
from __future__ import annotations

import io
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import numpy as np

from dltspec.backends.xla_cache import (
    MAX_ENTRIES,
    active,
    digest,
    folder,
    libraries,
    machine,
    prune,
    sources_digest,
)
from dltspec.files import write_atomic

T = TypeVar("T")


@dataclass
class StoredProgram:
    """What the store keeps of a spec's program: its parameters' names, initial values and
    hyper-parameters, its data layout, and per function the signatures seen and their executables."""

    names: list[str]  # the parameters', then the optimizer state's
    params: list[np.ndarray]  # their initial values, in the same order
    hyper: list[np.ndarray]
    batch_last: bool
    signatures: dict[str, dict] = field(default_factory=dict)  # function name -> {signature: entry}
    n_params: int = -1  # how many of ``names`` are parameters (the rest: the optimizer's state); -1: all

    def __post_init__(self):
        self.n_params = len(self.names) if self.n_params < 0 else self.n_params


@dataclass
class Store:
    """A spec's program in ``<cache>/xla/programs``: a hit gives everything :func:`dltspec.backends.jax_backend.build`
    needs without building the PyTensor graph (imports, rewrites and tracing: about a second).

    Its key is everything the program is made from: the spec's blocks that shape the model (not
    ``stopping``, ``save``, ``run``, ``sweep``), the input and output sizes, ``floatX``, the device,
    dltspec's own modules (:func:`sources_digest`), PyTensor and numpy (:func:`libraries`), and
    :func:`machine`. The arrays' shapes are not in it: each shape's executable has its own signature.
    """

    path: Path | None

    @classmethod
    def of(cls, model: dict, device, **figures) -> Store:
        """The store of the program of ``model`` (the spec's blocks that shape it) and ``figures``
        (sizes, float type) on ``device``; one that keeps nothing when the cache is not used."""
        return cls(entry_path("programs", device, json.dumps(model, sort_keys=True, default=str),
                              json.dumps(figures, sort_keys=True)))

    def read(self) -> StoredProgram | None:
        """The program kept here, or None (none, damaged, or the cache is off)."""
        def program(meta: dict, z) -> StoredProgram:
            return StoredProgram(list(meta["names"]), [z[f"param{i}"] for i in range(len(meta["names"]))],
                                 [z[f"hyper{i}"] for i in range(meta["n_hyper"])], bool(meta["batch_last"]),
                                 dict(meta["signatures"]), int(meta["n_params"]))

        return read_entry(self.path, program)

    def write(self, program: StoredProgram) -> None:
        meta = {"names": program.names, "n_params": program.n_params, "n_hyper": len(program.hyper),
                "batch_last": program.batch_last,
                "signatures": program.signatures}
        write_entry(self.path, meta, {**{f"param{i}": v for i, v in enumerate(program.params)},
                                      **{f"hyper{i}": v for i, v in enumerate(program.hyper)}})

    def add(self, name: str, signature_: str, entry: dict) -> None:
        """Record that function ``name``'s executable for ``signature_`` is ``entry``. Processes that add at
        once (sweep workers) may lose one another's additions: a lost one is compiled or read again later."""
        program = self.read()
        if program is not None:
            program.signatures.setdefault(name, {})[signature_] = entry
            self.write(program)


def entry_path(kind: str, device, *model: str) -> Path | None:
    """Where the cache keeps an entry of ``kind`` (``programs``, ``stacks``) made from ``model`` (its key's own
    parts) on ``device``: ``<cache>/xla/<kind>/<key>.npz``, the key adding dltspec's sources, PyTensor's and
    numpy's versions and :func:`machine`; None when the cache is not used."""
    code = sources_digest()
    if code is None or not active(device):
        return None
    return folder() / kind / f"{digest(*model, code, libraries(), machine(device))}.npz"


def read_entry(path: Path | None, make: Callable[[dict, object], T]) -> T | None:
    """``make(meta, arrays)`` of the entry at ``path`` (its JSON ``meta`` and its npz members), or None where
    there is none, it is damaged or not ours (whatever ``make`` raises); a hit refreshes its time for pruning."""
    if path is None:
        return None
    try:
        with np.load(io.BytesIO(path.read_bytes()), allow_pickle=False) as z:
            found = make(json.loads(bytes(z["meta"]).decode("utf-8")), z)
    except Exception:  # noqa: BLE001 - missing, torn (the zip's checksums), or not ours: built anew
        return None
    try:
        os.utime(path)
    except OSError:
        pass
    return found


def write_entry(path: Path | None, meta: dict, arrays: dict, keep: int = MAX_ENTRIES) -> None:
    """Write ``meta`` (JSON) and ``arrays`` as the entry at ``path``, whole or not at all, and keep at most
    ``keep`` entries of its kind; a cache that cannot be written only costs the build."""
    if path is None:
        return
    buffer = io.BytesIO()
    np.savez(buffer, meta=np.frombuffer(json.dumps(meta).encode("utf-8"), dtype=np.uint8),
             **{name: np.asarray(v) for name, v in arrays.items()})
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, buffer.getvalue(), sync=False)
    except OSError:
        return
    prune(path.parent, keep=keep, suffix=".npz")
