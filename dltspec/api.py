"""The Python API: the whole pipeline for scripts and notebooks. The CLI is a thin layer over it.

>>> import dltspec
>>> spec = dltspec.read("specs/digits.dlt", overrides=["stopping.n_epochs=2"])  # doctest: +SKIP
>>> result = dltspec.train(spec)                                                 # doctest: +SKIP
>>> result.best_validation_error, result.test_error                              # doctest: +SKIP
>>> dltspec.save(result, "digits.best.pkl")                                      # doctest: +SKIP
>>> dltspec.evaluate(spec, "digits.best.pkl")                                    # doctest: +SKIP

Every function that finds problems in a spec raises :class:`SpecError`, whose
``diagnostics`` are the located problems as data; :func:`diagnose` returns
them instead of raising.
"""
from __future__ import annotations

import os
import platform
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterable

from dltspec import checks as rules
from dltspec.diagnostics import Diagnostic, Span, SpecError, error, has_errors
from dltspec.lang.parse import MAX_SPEC_CHARS, parse_partial, too_large
from dltspec.lang.spec import Source, Spec
from dltspec.training.loop import LoopState, Patience, ValidationPoint, run_chunks
from dltspec.lang.validate import apply_override, schema_errors, to_instance, with_defaults

if TYPE_CHECKING:  # numpy, the data loaders and the parameter files are imported when used: not by `check`
    import numpy as np

    from dltspec.data import loaders as datasets


def diagnose(text: str, file: str = "<string>", base_dir: Path | str | None = None,
             overrides: Iterable[str] = (), max_variants: int | None = None) -> tuple[Spec | None, list[Diagnostic]]:
    """Parse, validate and check ``text``; return the spec (``None`` if it has errors) and all diagnostics.

    Nothing here imports PyTensor or reads data: this is what ``dltspec check`` runs.
    Syntax errors do not stop it: the blocks that parsed are still validated against the
    schema (a block dropped for a syntax error is not reported missing); the checks across
    blocks run once the syntax and the schema are clean. A spec with a ``sweep`` block has every
    variant checked too (``max_variants``: only the first so many, for an editor; ``0``: none, for a
    caller that checks them itself with :func:`dltspec.sweeps.variants.checked_variants`).
    """
    source = Source(file, text, Path(base_dir) if base_dir is not None else Path.cwd(), tuple(overrides))
    instance, positions, diagnostics = validated(text, file, source.overrides)
    if instance is None or has_errors(diagnostics):
        return None, sorted(diagnostics, key=Diagnostic.sort_key)
    spec = Spec(with_defaults(instance), positions, source)
    diagnostics += rules.check(spec)
    if "sweep" in spec.data and max_variants != 0 and not has_errors(diagnostics):
        from dltspec.sweeps.variants import check_variants

        diagnostics += check_variants(spec, diagnostics, max_variants)
    return (None if has_errors(diagnostics) else spec), sorted(diagnostics, key=Diagnostic.sort_key)


def validated(text: str, file: str, overrides: Iterable[str]) -> tuple[dict | None, object, list[Diagnostic]]:
    """Parse ``text``, apply ``overrides`` and validate the blocks that parsed against the schema.

    Returns ``(instance, positions, diagnostics)``; ``instance`` is ``None`` when the blocks could not
    be validated (structural errors, or text past the syntax-error limit). A block dropped for a
    syntax error is not reported missing.
    """
    document, syntax = parse_partial(text, file)
    instance, positions, structure = to_instance(document)
    for line, override in enumerate(overrides, start=1):
        structure += apply_override(instance, positions, override, line)
    if has_errors(structure) or "?" in document.broken:
        return None, positions, syntax + structure
    return instance, positions, syntax + structure + schema_errors(instance, positions, absent_ok=set(document.broken))


def layers(text: str, file: str = "<string>", overrides: Iterable[str] = ()) -> list | None:
    """The model summary's layers (:class:`dltspec.model.shapes.Layer`, input first, up to the first shape
    problem) of a spec whose blocks are valid; ``None`` if they are not. Imports neither PyTensor nor numpy."""
    from dltspec.model import shapes

    instance, _positions, diagnostics = validated(text, file, overrides)
    if instance is None or has_errors(diagnostics):
        return None
    return shapes.summary(with_defaults(instance))[0]


def read_text(path: Path | str) -> str:
    """The text of a spec file; :class:`SpecError` (DLT100, located at the path) if unreadable."""
    try:
        if Path(path).stat().st_size > 4 * MAX_SPEC_CHARS:  # UTF-8 takes at most 4 bytes a character
            raise SpecError([too_large(str(path), Path(path).stat().st_size, "bytes")])
        return Path(path).read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise SpecError([error("DLT100", f"cannot read spec: {reason}", Span.point(str(path)))]) from None


def read(path: Path | str | None = None, *, text: str | None = None, overrides: Iterable[str] = (),
         file: str | None = None, base_dir: Path | str | None = None) -> Spec:
    """Load a spec from a ``path`` or a ``text`` string, apply ``overrides`` and check it.

    Raises :class:`SpecError` with every diagnostic if the spec has errors.
    Warnings are kept on ``spec.warnings``.
    """
    if (path is None) == (text is None):
        raise TypeError("read() takes either a path or text=")
    if path is not None:
        text = read_text(path)
        file = file or str(path)
        base_dir = base_dir if base_dir is not None else Path(path).resolve().parent
    spec, diagnostics = diagnose(text, file or "<string>", base_dir, overrides)
    if spec is None:
        raise SpecError(diagnostics)
    spec.warnings = [d for d in diagnostics if not d.is_error]
    return spec


def data_diagnostic(spec: Spec, exc: datasets.DataError) -> Diagnostic:
    span = spec.positions.value(("dataset", exc.key)) if exc.key else spec.positions.block(("dataset",))
    return error(exc.code, exc.message, span, *exc.notes)


def load_data(spec: Spec, download: bool = False) -> datasets.Splits:
    """Load the spec's data set and run the checks that need its shapes; :class:`SpecError` on problems.
    ``download``: a missing ``dataset mnist`` may be downloaded (see :mod:`dltspec.data.fetch`)."""
    from dltspec.data import loaders as datasets

    try:
        splits = datasets.load(spec.block("dataset"), spec.source.base_dir, download=download)
    except datasets.DataError as exc:
        raise SpecError([data_diagnostic(spec, exc)]) from None
    problems = [d for d in rules.check_data(spec, splits) if d.is_error]
    if problems:
        raise SpecError(problems)
    return splits


def output_path(spec: Spec) -> Path:
    """Where the best parameters go: the ``save`` block's path, else ``<spec name>.best.pkl``."""
    return Path(spec.data.get("save", {}).get("path") or f"{spec.name}.best.pkl").expanduser()


def output_problem(path: Path) -> str | None:
    """Why ``path`` cannot be written, or ``None``: checked before training, not after."""
    parent = path.parent if str(path.parent) else Path(".")
    try:
        if not parent.exists():
            return f"directory {parent} does not exist"
        if not parent.is_dir():
            return f"{parent} is not a directory"
        if path.is_dir():
            return "it is a directory"
        if not os.access(parent, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
            return "permission denied"
    except OSError as exc:
        return exc.strerror or str(exc)
    except ValueError as exc:  # e.g. an embedded NUL byte
        return str(exc)
    return None


def check_output(spec: Spec, path: Path, span: Span | None = None) -> None:
    """Refuse before training if ``path`` cannot be written; the error is located at ``span``
    (default: the spec's save path)."""
    problem = output_problem(path)
    if problem:
        span = span or spec.positions.value(("save", "path"))
        raise SpecError([error("DLT503", f"cannot write {path}: {problem}", span)])


@dataclass
class Result:
    """What training produced: the best parameters and the figures that go with them."""

    spec: Spec
    params: dict[str, np.ndarray]  # empty when training diverged before its first validation
    best_validation_error: float
    best_iteration: int  # 1-based, as the tutorial reports it
    test_error: float | None
    epochs: int
    iterations: int
    stopped_by: str  # "patience", "n_epochs", "interrupted" or "diverged"
    seconds: float
    backend: str
    floatX: str
    history: list[ValidationPoint] = field(default_factory=list)
    device: str | None = None  # the JAX device of the jax backend
    problems: list[Diagnostic] = field(default_factory=list)  # why it stopped, when it diverged

    @property
    def finished(self) -> bool:
        return self.stopped_by in ("patience", "n_epochs")

    def summary(self) -> str:
        if self.best_iteration <= 0:
            return f"no validation yet; {self.iterations} minibatches trained, {self.seconds:.1f} s"
        test = f"{self.test_error * 100:f} %" if self.test_error is not None else "n/a"
        return (f"best validation error {self.best_validation_error * 100:f} % at iteration {self.best_iteration}, "
                f"test error {test} with those parameters; {self.epochs} epochs ({self.stopped_by}), "
                f"{self.seconds:.1f} s")


def build_program(spec: Spec, splits: datasets.Splits, backend: str, floatX: str, device: str | None,
                  training: bool = True, budget: int | None = None):
    """The spec compiled for ``backend``: a PyTensor ``Program``, or a ``JaxProgram`` on ``device``;
    a chunk of the data at a time when it does not fit ``budget`` bytes (default: the spec's
    ``run.device_memory``, else no limit)."""
    if budget is None and spec.data.get("run", {}).get("device_memory") is not None:
        from dltspec.data.stream import parse_size

        budget = parse_size(spec.data["run"]["device_memory"])
    if backend == "jax":
        from dltspec.backends.jax_backend import build as build_jax

        return build_jax(spec, splits, floatX=floatX, device_name=device, training=training, budget=budget)
    from dltspec.backends.pytensor_backend import build  # PyTensor is imported only when something is trained

    return build(spec, splits, backend=backend, floatX=floatX, training=training, budget=budget)


class Observer:
    """What a training run tells as it goes; subclass and override what you need."""

    def started(self, training: "Training") -> None:
        """The spec is compiled and the loop is about to start (or go on, when resumed)."""

    def chunk(self, training: "Training") -> None:
        """A chunk of minibatches was trained; ``training.state`` says how far the loop is."""

    def validation(self, point: ValidationPoint, training: "Training") -> None:
        """A validation point; checkpoint here with :meth:`Training.checkpoint`."""

    def finished(self, result: Result, training: "Training") -> None:
        """The loop ended (see ``result.stopped_by``)."""


class Observers(Observer):
    """Several observers, told in order."""

    def __init__(self, *observers: Observer):
        self.observers = [o for o in observers if o is not None]

    def started(self, training):
        for o in self.observers:
            o.started(training)

    def chunk(self, training):
        for o in self.observers:
            o.chunk(training)

    def validation(self, point, training):
        for o in self.observers:
            o.validation(point, training)

    def finished(self, result, training):
        for o in self.observers:
            o.finished(result, training)


#: what a checkpoint says of random state: nothing to save, and why
NO_RNG = ("none: the loop draws no random numbers (minibatches are taken in order; the initial parameters "
          "come from the spec's seeds and are in the checkpoint)")


@dataclass
class Training:
    """A compiled spec and the state of its patience loop: :meth:`run` trains, :meth:`checkpoint` captures."""

    spec: Spec
    program: object
    policy: Patience
    state: LoopState
    backend: str
    floatX: str
    device: str | None = None
    best: object = None  # the program's snapshot of the best parameters so far

    @property
    def batch_size(self) -> int:
        return self.spec.block("optimizer")["batch_size"]

    def best_values(self) -> dict[str, np.ndarray]:
        """Host copies of the best parameters so far (the current ones before any validation)."""
        return self.program.arrays(self.best) if self.best is not None else self.program.values()

    def checkpoint(self) -> dict:
        """Everything needed to go on from here exactly as an uninterrupted run would (plain data)."""
        return self.capture()()

    def capture(self) -> Callable[[], dict]:
        """The state now, taken cheaply (the parameters as the program's snapshots: references to
        immutable device arrays under JAX, one host copy under PyTensor); calling the result builds
        :meth:`checkpoint`'s plain data, and may be done later, in another thread."""
        program, params, best = self.program, self.program.snapshot(), self.best
        fields = {
            "spec_sha256": self.spec.source.sha256,
            "instance": self.spec.data,
            "backend": self.backend, "floatX": self.floatX, "device": self.placement,
            "patience": asdict(self.policy),
            "loop": asdict(self.state),
            "done": self.state.iteration >= 0 and self.policy.stops_at(self.state.iteration),
            "rng": NO_RNG,
        }
        return lambda: {**fields, "params": program.arrays(params),
                        "best_params": program.arrays(best) if best is not None else None}

    def restore(self, checkpoint: dict) -> None:
        """Go on from ``checkpoint`` (written by :meth:`checkpoint`).

        The loop's own state comes back (iteration, the patience it has reached, the best validation
        loss and iteration); the settings come from this spec, so a run resumed with ``--force`` and a
        larger ``n_epochs`` does train longer. :class:`SpecError` (DLT502) if the checkpoint's
        parameters do not fit this spec's model, DLT504 if its training split has another number of
        minibatches: neither can go on, forced or not.
        """
        from dltspec.training import params as param_files

        expected = {name: value.shape for name, value in self.program.values().items()}
        for key in ("params", "best_params"):
            problem = checkpoint[key] is not None and param_files.mismatch(expected, checkpoint[key])
            if problem:
                raise SpecError([error("DLT502", f"the checkpoint's parameters do not fit this spec's model: "
                                       f"{problem}", self.spec.positions.block(("classifier",)))])
        saved = checkpoint["patience"]
        if saved["n_train_batches"] != self.policy.n_train_batches:
            raise SpecError([error("DLT504", f"the run's training split had {saved['n_train_batches']} minibatches, "
                                   f"this one has {self.policy.n_train_batches}: it cannot go on from its checkpoint",
                                   self.spec.positions.block(("dataset",)))])
        if checkpoint["best_params"] is not None:
            self.program.set_values(checkpoint["best_params"])
            self.best = self.program.snapshot()
        self.program.set_values(checkpoint["params"])
        self.policy.patience = max(self.policy.patience, saved["patience"])
        self.policy.best_validation_loss, self.policy.best_iter = saved["best_validation_loss"], saved["best_iter"]
        self.state = LoopState(**checkpoint["loop"])

    @property
    def placement(self) -> str:
        """``cpu`` or ``gpu``: where the arithmetic runs (what ``--device`` chooses)."""
        platform = getattr(getattr(self.program, "device", None), "platform", "cpu")
        return "gpu" if platform in ("gpu", "cuda", "rocm") else "cpu"

    def run(self, observer: Observer | None = None, should_stop: Callable[[], bool] | None = None) -> Result:
        """Run the patience loop from where it is; ``should_stop()`` is asked between chunks."""
        observer = observer or Observer()
        observer.started(self)

        def on_best(iter_: int) -> float:
            self.best = self.program.snapshot()
            return self.program.error("test")

        loop = run_chunks(self.policy, self.program.train_chunk, lambda: self.program.error("valid"), on_best,
                          lambda point: observer.validation(point, self), state=self.state,
                          on_chunk=lambda state: observer.chunk(self), should_stop=should_stop)
        problems = [divergence_diagnostic(self, loop.divergence)] if loop.divergence else []
        kept = {} if loop.divergence and self.best is None else self.best_values()  # never parameters gone NaN
        result = Result(self.spec, kept, loop.best_validation_loss, loop.best_iter + 1,
                        loop.test_score, loop.epochs, loop.iterations, loop.stopped_by, loop.seconds,
                        self.backend, self.floatX, loop.history,
                        str(self.program.device) if self.backend == "jax" else None, problems)
        observer.finished(result, self)
        return result


def nonfinite_params(values: dict[str, np.ndarray]) -> list[str]:
    """``name (k of n values)`` for each parameter holding NaN or inf."""
    import numpy as np

    out = []
    for name, value in values.items():
        bad = int(np.size(value) - np.count_nonzero(np.isfinite(value)))
        if bad:
            out.append(f"{name} ({bad} of {np.size(value)} values)")
    return out


def divergence_diagnostic(training: Training, divergence) -> Diagnostic:
    """DLT601 at the learning rate: where the cost stopped being finite, what it did to the parameters."""
    spec = training.spec
    learning_rate = spec.block("optimizer")["learning_rate"]
    last = (f"the last finite cost was {divergence.last_finite_cost:.6g}" if divergence.last_finite_cost is not None
            else "no cost was finite")
    bad = nonfinite_params(training.program.values())
    params = (f"parameters with NaN or inf: {', '.join(bad)}" if bad
              else "the parameters are still finite: the cost itself overflowed")
    return error("DLT601", f"training diverged: the cost of iteration {divergence.iteration + 1} (epoch "
                 f"{divergence.epoch}, minibatch {divergence.minibatch}) is not finite; {last}",
                 spec.positions.value(("optimizer", "learning_rate")),
                 params,
                 f"learning rate {learning_rate:g} is likely too large: try {learning_rate / 10:g}",
                 "the best parameters found before it were kept" if training.best is not None
                 else "no validation was reached before it: no parameters were kept")


def compile_training(spec: Spec, *, backend: str = "numba", floatX: str = "float32",
                     splits: datasets.Splits | None = None, device: str | None = None,
                     budget: int | None = None) -> Training:
    """Load the data, compile the spec and set up a fresh patience loop (``budget``: device bytes
    the data may take, see :func:`build_program`)."""
    splits = splits if splits is not None else load_data(spec)
    program = build_program(spec, splits, backend, floatX, device, budget=budget)
    policy = Patience.from_block(spec.block("stopping"), program.n_batches["train"])
    return Training(spec, program, policy, LoopState(), backend, floatX,
                    str(program.device) if backend == "jax" else device)


def train(spec: Spec, *, backend: str = "numba", floatX: str = "float32",
          on_validation: Callable[[ValidationPoint], None] | None = None,
          splits: datasets.Splits | None = None, device: str | None = None,
          observer: Observer | None = None, should_stop: Callable[[], bool] | None = None,
          budget: int | None = None) -> Result:
    """Compile the spec and run the patience loop; return the best parameters and figures.

    ``backend="jax"`` runs it on one JAX ``device`` (``"cpu"``, ``"gpu"``, ``None``: JAX's
    default), several minibatches per dispatch, with the same decisions. ``observer`` is told
    of progress (see :class:`Observer`); ``on_validation(point)`` is a shorthand for one that
    only looks at validation points.
    """
    training = compile_training(spec, backend=backend, floatX=floatX, splits=splits, device=device, budget=budget)
    return training.run(Observers(observer, validation_callback(on_validation)), should_stop)


def validation_callback(on_validation: Callable[[ValidationPoint], None] | None) -> Observer | None:
    if on_validation is None:
        return None
    observer = Observer()
    observer.validation = lambda point, training: on_validation(point)
    return observer


def versions(backend: str = "numba") -> dict[str, str]:
    """The versions of Python and the packages that computed a result (looked up once: reading
    package metadata takes milliseconds)."""
    return dict(package_versions(backend == "jax"))


@lru_cache(maxsize=2)
def package_versions(with_jax: bool) -> tuple[tuple[str, str], ...]:
    from importlib.metadata import PackageNotFoundError, version

    import numpy as np

    out = {"python": platform.python_version(), "numpy": np.__version__}
    for package in ("dltspec", "pytensor") + (("jax", "jaxlib") if with_jax else ()):
        try:
            out[package] = version(package)
        except PackageNotFoundError:  # pragma: no cover - running from a source tree
            out[package] = "unknown"
    return tuple(out.items())


def metadata(spec: Spec, backend: str, floatX: str, device: str | None, **figures) -> dict:
    """What a parameter file says of where its values come from: the spec, versions, backend, ``figures``."""
    source = spec.source
    return {
        "spec": source.text,
        "spec_file": source.file,
        "overrides": list(source.overrides),
        "spec_sha256": source.sha256,
        "versions": versions(backend),
        "backend": backend,
        **({"device": device} if device else {}),
        "floatX": floatX,
        **figures,
    }


def result_metadata(result: Result) -> dict:
    return metadata(result.spec, result.backend, result.floatX, result.device,
                    best_validation_error=result.best_validation_error, best_iteration=result.best_iteration,
                    test_error=result.test_error, epochs=result.epochs, stopped_by=result.stopped_by)


def training_metadata(training: Training) -> dict:
    """:func:`metadata` of the best parameters so far."""
    return metadata(training.spec, training.backend, training.floatX, training.device,
                    best_validation_error=training.policy.best_validation_loss,
                    best_iteration=training.policy.best_iter + 1, test_error=training.state.test_score,
                    iterations=training.state.iteration + 1)


def save(result: Result, path: Path | str | None = None) -> Path:
    """Write the best parameters and metadata atomically; return the path written."""
    from dltspec.training import params as param_files

    path = Path(path) if path is not None else output_path(result.spec)
    try:
        param_files.save(path, result.params, result_metadata(result))
    except param_files.ParamsError as exc:
        raise SpecError([error(exc.code, exc.message, result.spec.positions.value(("save", "path")))]) from None
    return path


def evaluate(spec: Spec, params_path: Path | str, *, backend: str = "numba", floatX: str = "float32",
             device: str | None = None, budget: int | None = None) -> dict[str, float]:
    """Load saved parameters into the compiled model; return ``{"valid": error, "test": error}``."""
    from dltspec.training import params as param_files

    where = Span.point(str(params_path))
    try:
        values, _meta = param_files.load(Path(params_path))
    except param_files.ParamsError as exc:
        raise SpecError([error(exc.code, exc.message, where)]) from None
    splits = load_data(spec)
    program = build_program(spec, splits, backend, floatX, device, training=False, budget=budget)
    expected = {name: value.shape for name, value in program.values().items()}
    problem = param_files.mismatch(expected, values)
    if problem:
        raise SpecError([error("DLT502", f"{params_path} does not fit this spec's model: {problem}", where)])
    program.set_values(values)
    return {split: program.error(split) for split in ("valid", "test")}
