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

import hashlib
import importlib.util
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from dltspec.diagnostics import DltspecError

#: the version of the metadata every exported file carries (``dltspec.format``)
FORMAT = "dltspec.export/1"
INSTALL = "pip install 'dltspec[export]'"


class ExportError(DltspecError):
    """A run that cannot be exported as asked: ``code`` DLT503 (the file cannot be written), DLT506 (the
    format's package is not installed) or DLT507 (a layer the format cannot express); ``path``, where in
    the run's spec it concerns (a ``layer`` block, the classifier), if anywhere."""

    def __init__(self, code: str, message: str, path: tuple = (), notes: tuple[str, ...] = ()):
        super().__init__(message)
        self.code, self.path, self.notes = code, path, notes


@dataclass(frozen=True)
class Trained:
    """A run's trained classifier: its spec, its layers and their parameters, what the run reached.

    Attributes
    ----------
    spec : dltspec.lang.spec.Spec
        The run's ``spec.dlt``, read and checked.
    network : dltspec.model.networks.Network
        The stack of layers the spec builds (:func:`dltspec.model.shapes.network`), on inputs of
        ``network.input_shape``.
    params : dict of str to numpy.ndarray
        The parameters by the names the layers give them (``hidden0.W``, ``conv0.b``, ``layer2.W``).
    n_in, n_out : int
        The values of one input row, the classes.
    metadata : dict of str to str
        What every exported file carries (:func:`metadata`).
    """

    spec: object
    network: object
    params: dict
    n_in: int
    n_out: int
    metadata: dict

    def layers(self) -> list[tuple]:
        """``(place, layer, input shape, output shape)`` of every layer, input side first."""
        return [(i, layer, tuple(shape), tuple(out)) for i, (layer, shape, out) in enumerate(self.network.shapes())]


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


def figures(summary: dict) -> dict[str, str]:
    """The run's figures from ``summary.json`` as metadata strings: numbers in JSON (``null`` where the run
    reached none), its status as it is."""
    keys = ("best_validation_error", "test_error", "best_iteration", "epochs")
    return {**{f"dltspec.{key}": json.dumps(summary.get(key)) for key in keys},
            "dltspec.status": str(summary.get("status", "unknown"))}


def layer_records(trained: Trained) -> list[dict]:
    """Each layer as plain data: place, name, kind, its keys, input and output shapes, its parameters."""
    out = []
    for i, layer, shape, output in trained.layers():
        keys = {k: v for k, v in asdict(layer).items() if k != "name"}
        params = [p.name for p in layer.param_shapes(shape)]
        out.append({"place": i, "name": layer.name, "kind": layer.kind, "keys": keys, "input_shape": list(shape),
                    "output_shape": list(output), "params": params})
    return out


def metadata(name: str, spec_text: str, summary: dict, params_file: str) -> dict[str, str]:
    """What every exported file carries, as strings: the run's name, the spec as run and its SHA-256, the
    run's figures and the parameter file the values come from (the layers are added by :func:`load`)."""
    from dltspec import __version__

    return {"dltspec.format": FORMAT, "dltspec.version": __version__, "dltspec.name": name, "dltspec.spec": spec_text,
            "dltspec.spec_sha256": hashlib.sha256(spec_text.encode("utf-8")).hexdigest(),
            "dltspec.parameters": params_file, **figures(summary)}


def load(run_path: Path, snapshot: int | None = None) -> Trained:
    """The trained classifier of the run in ``run_path``: its best parameters, or the snapshot of iteration
    ``snapshot``.

    Raises
    ------
    dltspec.training.rundir.RunError
        Not a run directory, or no such snapshot.
    dltspec.training.params.ParamsError
        The parameter file is missing or unreadable (DLT501), or does not fit the spec's model (DLT502).
    dltspec.SpecError
        The run's ``spec.dlt`` has errors.
    """
    from dltspec import api
    from dltspec.model import shapes
    from dltspec.predict import n_in_of, n_out_of
    from dltspec.training import params as param_files
    from dltspec.training.rundir import RUN, SPEC, RunDir

    run = RunDir.open(Path(run_path))
    path = run.params_file(snapshot)
    values, _meta = param_files.load(path)
    spec = api.read(run.file(SPEC))
    n_in, n_out = n_in_of(spec, values), n_out_of(spec, values)
    network = shapes.network(spec.data, n_in, n_out)
    problem = param_files.mismatch({p.name: tuple(p.shape) for p in network.params()}, values)
    if problem:
        raise param_files.ParamsError("DLT502", f"{path} does not fit the run's model: {problem}")
    name = str(run.read_json(RUN).get("name") or run.path.resolve().name)
    meta = metadata(name, spec.source.text, run.summary(), str(path.relative_to(run.path)))
    trained = Trained(spec, network, dict(values), n_in, n_out, meta)
    meta.update({"dltspec.n_in": str(n_in), "dltspec.n_out": str(n_out),
                 "dltspec.layers": json.dumps(layer_records(trained))})
    return trained


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
