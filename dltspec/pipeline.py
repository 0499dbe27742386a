"""The pipeline's steps, composed from the stages: read and check a spec, load its data, compile it,
train it, save and evaluate what it trained. :mod:`dltspec.api` is the facade over them (and
:mod:`dltspec.sweeps` builds on them); the stages below know nothing of this module.
"""
from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from dltspec import checks as rules
from dltspec.backends.options import default_backend
from dltspec.diagnostics import Diagnostic, Span, SpecError, error, has_errors
from dltspec.lang.parse import MAX_SPEC_CHARS, parse_partial, too_large
from dltspec.lang.spec import Source, Spec
from dltspec.lang.validate import apply_override, schema_errors, to_instance, with_defaults
from dltspec.training.loop import LoopState, Patience, ValidationPoint
from dltspec.training.session import (  # noqa: F401
    Observer,
    Observers,
    Result,
    Training,
    metadata,
    result_metadata,
    training_metadata,
    versions,
)

if TYPE_CHECKING:  # numpy, the data loaders and the parameter files are imported when used: not by `check`

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
    import stat

    try:
        st = os.stat(path)
        if not stat.S_ISREG(st.st_mode):  # a FIFO would block, a device (/dev/zero) never end
            raise SpecError([error("DLT100", "cannot read spec: not a regular file (a device, a pipe or a socket)",
                                   Span.point(str(path)))])
        limit = 4 * MAX_SPEC_CHARS  # UTF-8 takes at most 4 bytes a character
        with open(path, "rb") as f:
            data = f.read(limit + 1)  # at most: the size the system reports is not trusted
        if len(data) > limit:
            raise SpecError([too_large(str(path), max(st.st_size, len(data)), "bytes")])
        return data.decode("utf-8-sig").replace("\r\n", "\n").replace("\r", "\n")  # universal newlines, as text mode
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
    return exc.as_diagnostics(span)[0]


def load_data(spec: Spec, download: bool = False) -> datasets.Splits:
    """Load the spec's data set and run the checks that need its shapes; :class:`SpecError` on problems.
    ``download``: a missing ``dataset mnist`` may be downloaded (see :mod:`dltspec.data.fetch`)."""
    from dltspec.data import loaders as datasets

    try:
        splits = datasets.load(spec.block("dataset"), spec.source.base_dir, download=download)
    except datasets.DataError as exc:
        raise SpecError([data_diagnostic(spec, exc)]) from None
    found = rules.check_data(spec, splits)
    problems = [d for d in found if d.is_error]
    if problems:
        raise SpecError(problems)
    spec.warnings = spec.warnings + [d for d in found if d not in spec.warnings]
    return splits


def output_path(spec: Spec) -> Path:
    """Where the best parameters go: the ``save`` block's path, else ``<spec name>.best.pkl``."""
    return Path(spec.data.get("save", {}).get("path") or f"{spec.name}.best.pkl").expanduser()


def output_problem(path: Path) -> str | None:
    """Why ``path`` cannot be written, or ``None``: checked before training, not after."""
    from dltspec.files import ReadOnlyError, target_of

    try:
        path = target_of(path)  # a link is written through: its target is what must be writable
    except ReadOnlyError as exc:
        return exc.strerror
    except OSError as exc:
        return exc.strerror or str(exc)
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


def build_program(spec: Spec, splits: datasets.Splits, backend: str, floatX: str, device: str | None,
                  training: bool = True, budget: int | None = None):
    """The spec compiled for ``backend``: a PyTensor ``Program``, or a ``JaxProgram`` on ``device``;
    a chunk of the data at a time when it does not fit ``budget`` bytes (default: the spec's
    ``run.device_memory``, else no limit)."""
    if budget is None and spec.data.get("run", {}).get("device_memory") is not None:
        from dltspec.data.stream import parse_size

        budget = parse_size(spec.data["run"]["device_memory"])
    from dltspec.backends import select

    return select(backend, device)(spec, splits, floatX, training, budget)


def compile_training(spec: Spec, *, backend: str | None = None, floatX: str = "float32",
                     splits: datasets.Splits | None = None, device: str | None = None,
                     budget: int | None = None) -> Training:
    """Load the data, compile the spec and set up a fresh patience loop (``budget``: device bytes
    the data may take, see :func:`build_program`). ``backend``: the CLI's default, ``jax`` where jax is
    installed, else ``numba`` (:func:`dltspec.backends.options.default_backend`)."""
    backend = backend or default_backend()
    splits = splits if splits is not None else load_data(spec)
    program = build_program(spec, splits, backend, floatX, device, budget=budget)
    policy = Patience.from_block(spec.block("stopping"), program.n_batches["train"])
    pretraining = {}
    if "pretrain" in spec.data:
        from dltspec.model.pretrain import phase_spec
        from dltspec.training.pretrain import PretrainState

        pretraining = {"pretrain": PretrainState(), "phases": lambda phase: build_program(
            phase_spec(spec, phase), splits, backend, floatX, device, budget=budget)}
    return Training(spec, program, policy, LoopState(), backend, floatX,
                    str(program.device) if backend == "jax" else device, **pretraining)


def compile_stacks(specs: list[Spec], splits: datasets.Splits, *, floatX: str = "float32",
                   device: str | None = None, budget: int | None = None,
                   max_stack: int | None = None) -> list[tuple[list[int], list[Training] | None]]:
    """``specs`` (on the same data, ``splits``) grouped into stacks of one graph
    (:mod:`dltspec.backends.stack`), each at most ``max_stack`` variants: per group, the indices into
    ``specs`` and a fresh :class:`Training` of each on one compiled stack, or ``None`` for a spec that trains
    alone (it stacks with nothing, pre-trains, its data is streamed, or a stack of it does not pay on a CPU).
    ``max_stack`` defaults to what the device's memory (``budget`` bytes, where given) holds, and on a CPU to
    what pays (:func:`dltspec.backends.stack_limits.limit`)."""
    from dltspec.backends import stack, stack_limits
    from dltspec.backends.devices import device as jax_device, jax_module
    from dltspec.backends.jax_backend import program_key
    from dltspec.backends.stack_store import StackStore, StoredStack

    target = jax_device(device)
    jax_module().config.update("jax_enable_x64", True)  # before the store's key reads JAX's configuration
    sizes = {i: max_stack or stack_limits.limit(spec, splits, budget, target) for i, spec in enumerate(specs)}
    ready = [i for i, spec in enumerate(specs) if sizes[i] > 1 and stack_limits.stackable(spec, splits, budget)]
    store = StackStore.of([program_key(specs[i], splits, floatX, True) for i in ready], [sizes[i] for i in ready],
                          target)
    graphs: dict[int, stack.Symbolic] = {}

    def graph(i: int) -> stack.Symbolic:  # built only where the store has not kept what it decides
        if i not in graphs:
            graphs[i] = stack.symbolic(specs[i], splits, floatX, target.platform == "cpu")
        return graphs[i]

    kept = store.read() if ready else []
    if kept is None:
        kept = []
        for group in stack.groups([graph(i) for i in ready]):
            size = sizes[ready[group[0]]]
            for first in range(0, len(group), size):
                part = group[first:first + size]
                kept.append(StoredStack(part) if len(part) == 1 else
                            stack.described([graph(ready[g]) for g in part], part, target))
        store.write(kept)
    out: list[tuple[list[int], list[Training] | None]] = [([i], None) for i in range(len(specs)) if i not in ready]
    for index, part in enumerate(kept):
        members = [ready[g] for g in part.members]
        if len(members) == 1:
            out.append((members, None))
            continue
        program = stack.build_stack([specs[i] for i in members], part, lambda i=members[0]: graph(i), splits, floatX,
                                    device, store.part(index))
        out.append((members, [Training(specs[i], member, Patience.from_block(specs[i].block("stopping"),
                                                                              program.n_batches["train"]),
                                       LoopState(), "jax", floatX, str(program.device))
                              for i, member in zip(members, program.members())]))
    return sorted(out, key=lambda item: item[0][0])


def train(spec: Spec, *, backend: str | None = None, floatX: str = "float32",
          on_validation: Callable[[ValidationPoint], None] | None = None,
          splits: datasets.Splits | None = None, device: str | None = None,
          observer: Observer | None = None, should_stop: Callable[[], bool] | None = None,
          budget: int | None = None, progress: bool | None = None) -> Result:
    """Compile the spec and run the patience loop; return the best parameters and figures.

    ``backend="jax"`` runs it on one JAX ``device`` (``"cpu"``, ``"gpu"``, ``None``: JAX's
    default), several minibatches per dispatch, with the same decisions. ``observer`` is told
    of progress (see :class:`Observer`); ``on_validation(point)`` is a shorthand for one that
    only looks at validation points. ``progress``: show a bar (tqdm's auto mode: a widget in Jupyter,
    text on standard error elsewhere) with each validation point as a line; ``None`` (the default):
    in Jupyter only.
    """
    from dltspec.training.progress import api_progress

    training = compile_training(spec, backend=backend, floatX=floatX, splits=splits, device=device, budget=budget)
    return training.run(Observers(observer, validation_callback(on_validation), api_progress(progress)), should_stop)


def validation_callback(on_validation: Callable[[ValidationPoint], None] | None) -> Observer | None:
    if on_validation is None:
        return None
    observer = Observer()
    observer.validation = lambda point, training: on_validation(point)
    return observer


def save(result: Result, path: Path | str | None = None) -> Path:
    """Write the best parameters and metadata atomically; return the path written."""
    from dltspec.training import params as param_files

    path = Path(path) if path is not None else output_path(result.spec)
    try:
        param_files.save(path, result.params, result_metadata(result))
    except param_files.ParamsError as exc:
        raise SpecError(exc.as_diagnostics(result.spec.positions.value(("save", "path")))) from None
    return path


def evaluate(spec: Spec, params_path: Path | str, *, backend: str | None = None, floatX: str = "float32",
             device: str | None = None, budget: int | None = None) -> dict[str, float]:
    """Load saved parameters into the compiled model; return ``{"valid": error, "test": error}``."""
    from dltspec.training import params as param_files

    backend = backend or default_backend()
    where = Span.point(str(params_path))
    try:
        values, _meta = param_files.load(Path(params_path))
    except param_files.ParamsError as exc:
        raise SpecError(exc.as_diagnostics(where)) from None
    splits = load_data(spec)
    program = build_program(spec, splits, backend, floatX, device, training=False, budget=budget)
    expected = {name: value.shape for name, value in program.values().items()}
    problem = param_files.mismatch(expected, values)
    if problem:
        raise SpecError([error("DLT502", f"{params_path} does not fit this spec's model: {problem}", where)])
    program.set_values(values)
    return {split: program.error(split) for split in ("valid", "test")}

