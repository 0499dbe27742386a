"""The stacks the XLA cache keeps, one file per sweep job: what a warm stacked build starts from without
PyTensor (:func:`dltspec.pipeline.compile_stacks`), as :class:`dltspec.backends.xla_programs.Store` keeps
one variant's program.

A job's stacks are decided by its variants' PyTensor graphs (which of them are one computation) and
each stack starts from its members' initial values; building those graphs costs a stacked worker about
1.8 s (importing PyTensor and its JAX dispatch, building, comparing and converting the graphs) where a
warm single variant spends nothing. The file under ``<cache>/xla/stacks/<key>.npz`` keeps, per stack
of the job, its members, the parameters' and the optimizer state's names, every member's initial values
and hyper-parameters, the data layout, and per function the signatures seen and their executables' keys.

Its key is everything that decides them: each stacking variant's program key (the blocks that shape its
model, the sizes and float type, as :func:`dltspec.backends.jax_backend.program_key` says), in order,
the stacks' size bounds, the device, dltspec's own modules, PyTensor, numpy and :func:`machine`.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from dltspec.backends.xla_programs import entry_path, read_entry, write_entry

#: a job's stacks are kept only while their initial values take at most this many bytes (a large stack, as a
#: GPU's 64 tutorial MLPs at 1.6 MB each, trains long enough that its second of graph building does not show);
#: and at most :data:`KEPT` jobs' stacks are kept, the least recently used removed first
MAX_BYTES = 64 << 20
KEPT = 50


@dataclass
class StoredStack:
    """One stack of a job as kept: its members (indices into the job's stacking variants), and for a stack of
    two or more, what :func:`dltspec.backends.stack.build_stack` needs besides the graph."""

    members: list[int]
    names: list[str] = field(default_factory=list)  # the parameters', then the optimizer state's
    n_params: int = 0
    params: list[list[np.ndarray]] = field(default_factory=list)  # per member, in ``names``' order
    hyper: list[list[np.ndarray]] = field(default_factory=list)  # per member
    batch_last: bool = False
    signatures: dict[str, dict] = field(default_factory=dict)  # function name -> {signature: entry}


@dataclass
class StackStore:
    """A job's stacks in ``<cache>/xla/stacks``; ``path`` None: nothing is kept (the cache is off)."""

    path: Path | None

    @classmethod
    def of(cls, programs: list, sizes: list[int], device) -> StackStore:
        """The store of the stacks of variants whose program keys are ``programs`` (in order), each in stacks
        of at most ``sizes[i]``, on ``device``."""
        if not programs:
            return cls(None)
        return cls(entry_path("stacks", device, json.dumps(programs, sort_keys=True, default=str), json.dumps(sizes)))

    def read(self) -> list[StoredStack] | None:
        """The job's stacks kept here, or None (none, damaged, or the cache is off)."""
        def stacks(meta: dict, z) -> list[StoredStack]:
            out = []
            for s, part in enumerate(meta["stacks"]):
                n, members = len(part["names"]), range(len(part["members"]))
                out.append(StoredStack(list(part["members"]), list(part["names"]), int(part["n_params"]),
                                       [[z[f"s{s}m{m}p{k}"] for k in range(n)] for m in members] if n else [],
                                       [[z[f"s{s}m{m}h{k}"] for k in range(part["n_hyper"])] for m in members]
                                       if n else [],
                                       bool(part["batch_last"]), dict(part["signatures"])))
            return out

        return read_entry(self.path, stacks)

    def write(self, stacks: list[StoredStack]) -> None:
        if sum(np.asarray(v).nbytes for part in stacks for member in part.params + part.hyper
               for v in member) > MAX_BYTES:
            return
        meta, arrays = [], {}
        for s, part in enumerate(stacks):
            meta.append({"members": part.members, "names": part.names, "n_params": part.n_params,
                         "n_hyper": len(part.hyper[0]) if part.hyper else 0, "batch_last": part.batch_last,
                         "signatures": part.signatures})
            for m, (params, hyper) in enumerate(zip(part.params, part.hyper)):
                arrays.update({f"s{s}m{m}p{k}": v for k, v in enumerate(params)})
                arrays.update({f"s{s}m{m}h{k}": v for k, v in enumerate(hyper)})
        write_entry(self.path, {"stacks": meta}, arrays, keep=KEPT)

    def part(self, index: int) -> StackPart:
        """What records the executables of the job's stack ``index`` (the store of a
        :class:`dltspec.backends.xla_cache.Cached`)."""
        return StackPart(self, index)


@dataclass
class StackPart:
    """Stack ``index`` of a :class:`StackStore`, as the store of its functions' executables."""

    store: StackStore
    index: int

    def add(self, name: str, signature_: str, entry: dict) -> None:
        """Record that function ``name``'s executable for ``signature_`` is ``entry`` (a lost addition, as in
        :meth:`dltspec.backends.xla_programs.Store.add`, is compiled or read again later)."""
        stacks = self.store.read()
        if stacks is not None and self.index < len(stacks):
            stacks[self.index].signatures.setdefault(name, {})[signature_] = entry
            self.store.write(stacks)


__all__ = ["StackPart", "StackStore", "StoredStack"]
