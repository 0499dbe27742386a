"""``dltspec export``: a run's trained classifier as an ONNX graph, or its parameters as ``.npz`` or safetensors."""
from __future__ import annotations

import sys
from pathlib import Path

from dltspec.cli.common import EXIT_ERRORS, EXIT_OK, EXIT_USAGE, report, usage
from dltspec.diagnostics import Span, SpecError


def flag_span(flag: str, value: str) -> Span:
    """Where a command-line option's value is, for a diagnostic about it (``--format:1:1``)."""
    return Span(flag, 1, 1, 1, len(value) + 1)


def layer_span(spec, path: tuple) -> Span:
    """The ``layer`` block ``path`` names in the run's spec, else its classifier block (a preset's layers)."""
    blocks = spec.positions.blocks
    return blocks[path] if path in blocks else spec.positions.block(("classifier",))


def file_lines(file: str) -> list[str]:
    """The lines of ``file``, for the source line under a diagnostic (none where it cannot be read)."""
    try:
        return Path(file).read_text(encoding="utf-8").split("\n")
    except (OSError, UnicodeDecodeError):
        return []


def cmd_export(args) -> int:
    from dltspec.export import FORMATS, ExportError, default_output, load, missing
    from dltspec.files import write_atomic
    from dltspec.training import params as param_files
    from dltspec.training.rundir import RunDir, RunError

    problem = missing(args.format)
    if problem:  # before anything is read: the format cannot be written here
        report(problem.as_diagnostics(flag_span("--format", args.format)), None)
        return EXIT_ERRORS
    run = Path(args.run)
    try:
        params_file = RunDir.open(run).params_file(args.snapshot)
        trained = load(run, args.snapshot)
    except RunError as exc:
        return usage("export", exc.message) or EXIT_USAGE
    except param_files.ParamsError as exc:
        report(exc.as_diagnostics(Span.point(str(params_file))), file_lines)
        return EXIT_ERRORS
    except SpecError as exc:
        report(exc.diagnostics, file_lines)
        return EXIT_ERRORS
    lines = trained.spec.source.lines
    out = Path(args.output) if args.output else default_output(run, args.format, args.snapshot)
    try:
        data = FORMATS[args.format].write(trained)  # made and checked in full before anything is written
        write_atomic(out, data, mode=0o644)
    except ExportError as exc:
        report(exc.as_diagnostics(layer_span(trained.spec, exc.path)), lines)
        return EXIT_ERRORS
    except OSError as exc:
        error = ExportError("DLT503", f"cannot write {out}: {exc.strerror or exc}")
        report(error.as_diagnostics(flag_span("-o", str(args.output or out))), None)
        return EXIT_ERRORS
    n_params, meta = sum(int(v.size) for v in trained.params.values()), trained.metadata
    print(f"wrote {out}: {meta['dltspec.name']}, {len(trained.network.layers)} layers, {n_params:,} parameters "
          f"({args.format}, from {meta['dltspec.parameters']})", file=sys.stdout)
    return EXIT_OK
