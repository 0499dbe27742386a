"""Exporting a run's trained classifier: ``dltspec export RUN --format onnx|npz|safetensors``.

What is exported is :class:`Trained`: the run's spec as run, its network (the stack of layers the
spec declares, a preset expanded as its layers, each with the shape of its input) and the
parameters of ``best.pkl`` or a snapshot, with what the run reached (:func:`load`). Each format is
one function ``Trained -> bytes`` in :data:`FORMATS`; the bytes are made and checked in full before
anything is written, then written atomically, so a model a format cannot express (DLT507) or a
missing extra (DLT506) never leaves a file behind.

- ``onnx`` (:mod:`dltspec.export.onnx`): the forward pass as an ONNX graph, one emitter per layer kind;
- ``npz``, ``safetensors`` (:mod:`dltspec.export.arrays`): the parameter arrays, exactly as trained.

All three carry the same metadata (:func:`metadata`): the spec text, its SHA-256, the run's figures
and the layers.
"""
from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from dltspec.export.trained import FORMAT, ExportError, Trained, load, metadata

__all__ = ["FORMAT", "FORMATS", "ExportError", "Format", "Trained", "default_output", "export", "load", "metadata",
           "missing"]
INSTALL = "pip install 'dltspec[export]'"


@dataclass(frozen=True)
class Format:
    """An export format: ``write(trained) -> bytes``, the packages it needs and its file suffix."""

    write: Callable[[Trained], bytes]
    needs: tuple[str, ...]
    suffix: str


def _onnx(trained: Trained) -> bytes:
    from dltspec.export.onnx import serialized

    return serialized(trained)


def _npz(trained: Trained) -> bytes:
    from dltspec.export.arrays import npz_bytes

    return npz_bytes(trained)


def _safetensors(trained: Trained) -> bytes:
    from dltspec.export.arrays import safetensors_bytes

    return safetensors_bytes(trained)


#: format name -> :class:`Format` (``dltspec export --format`` offers these)
FORMATS: dict[str, Format] = {
    "onnx": Format(_onnx, ("onnx",), ".onnx"),
    "npz": Format(_npz, (), ".npz"),
    "safetensors": Format(_safetensors, ("safetensors",), ".safetensors"),
}


def missing(fmt: str) -> ExportError | None:
    """Why ``fmt`` cannot be written here (a package it needs is not installed, DLT506), or ``None``."""
    absent = [name for name in FORMATS[fmt].needs if importlib.util.find_spec(name) is None]
    if not absent:
        return None
    return ExportError("DLT506", f"exporting as {fmt} needs {', '.join(absent)}, which is not installed",
                       notes=(f"install it with: {INSTALL}; --format npz needs nothing more",))


def default_output(run_path: Path, fmt: str, snapshot: int | None = None) -> Path:
    """``RUN/model.<suffix>``, or ``RUN/model-iter-<N>.<suffix>`` for a snapshot."""
    stem = "model" if snapshot is None else f"model-iter-{snapshot}"
    return Path(run_path) / f"{stem}{FORMATS[fmt].suffix}"


def export(run_path: Path | str, fmt: str = "onnx", out: Path | str | None = None,
           snapshot: int | None = None) -> Path:
    """Write the run's trained classifier as ``fmt`` to ``out`` (default :func:`default_output`), atomically.

    Parameters
    ----------
    run_path : path
        A run directory written by ``dltspec run``.
    fmt : str
        A name of :data:`FORMATS`: ``onnx``, ``npz`` or ``safetensors``.
    out : path, optional
        The file to write.
    snapshot : int, optional
        The snapshot of this iteration, in place of the best parameters.

    Returns
    -------
    pathlib.Path
        The file written.

    Raises
    ------
    ExportError
        DLT506 (the format's package is missing), DLT507 (a layer it cannot express), DLT503 (the file
        cannot be written); nothing is written.
    """
    from dltspec.files import write_atomic

    problem = missing(fmt)
    if problem:
        raise problem
    trained = load(Path(run_path), snapshot)
    data = FORMATS[fmt].write(trained)  # in full, checked, before anything is written
    target = Path(out) if out is not None else default_output(Path(run_path), fmt, snapshot)
    try:
        write_atomic(target, data, mode=0o644)
    except OSError as exc:
        raise ExportError("DLT503", f"cannot write {target}: {exc.strerror or exc}") from None
    return target
