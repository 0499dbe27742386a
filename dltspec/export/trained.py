"""What is exported: a run's trained classifier (:class:`Trained`), read by :func:`load`, with the metadata
every format carries (:func:`metadata`)."""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path

from dltspec.diagnostics import DltspecError

#: the version of the metadata every exported file carries (``dltspec.format``)
FORMAT = "dltspec.export/1"


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


