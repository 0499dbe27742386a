"""``dltspec check``, ``fmt``, ``schema`` and ``lsp``: the commands that read specs without training."""
from __future__ import annotations

import json
import sys

from dltspec import api
from dltspec.cli.common import EXIT_ERRORS, EXIT_OK, EXIT_USAGE, diagnose_path, report, spec_paths
from dltspec.diagnostics import Diagnostic, SpecError


def check_one(path: str, args) -> tuple[list[Diagnostic], object, str | None]:
    """All diagnostics of one spec file, a lookup of its source lines, and its text (``None`` if unreadable)."""
    try:  # with --data, a sweep's variants are checked once, below, then against their data
        spec, diagnostics, lines, text = diagnose_path(path, args.set, max_variants=0 if args.data else None)
    except SpecError as exc:
        return exc.diagnostics, lambda f: [], None
    if spec is not None and args.data:
        from dltspec.sweeps.tasks import with_data
        from dltspec.sweeps.variants import checked_variants

        ready, found = checked_variants(spec, diagnostics)
        diagnostics = sorted(diagnostics + found + with_data(spec, ready)[1], key=Diagnostic.sort_key)
    return diagnostics, lines, text


def print_shapes(text: str, path: str, overrides) -> None:
    """The model summary of a spec whose blocks are valid (its layers up to a shape error, if any)."""
    from dltspec.model.shapes import table

    found = api.layers(text, path if path != "-" else "<stdin>", overrides)
    if found is not None:
        print(table(found))


def print_expanded(text: str, path: str, overrides) -> None:
    """A preset's model as ``classifier layers`` and ``layer`` blocks (a layer stack prints as it is)."""
    import dltspec
    from dltspec.lang.spelling import instance_text
    from dltspec.model.networks import expanded

    spec, _ = dltspec.diagnose(text, file=path if path != "-" else "<stdin>", overrides=overrides)
    if spec is not None:
        classifier, stack = expanded(spec.block("classifier"))
        print(instance_text({"classifier": classifier, "layer": stack or spec.data.get("layer", [])}), end="")


def cmd_check(args) -> int:
    for flag, what in (("shapes", "a table"), ("expand", "spec text")):
        if getattr(args, flag) and args.format != "text":
            print(f"dltspec check: --{flag} prints {what} for people: use it with --format text", file=sys.stderr)
            return EXIT_USAGE
    paths = spec_paths(args.specs)
    if paths is None:
        return EXIT_USAGE
    everything: list[Diagnostic] = []
    for path in paths:
        diagnostics, lines, text = check_one(path, args)
        everything += diagnostics
        if args.shapes and text is not None:
            print_shapes(text, path, args.set)
        if args.expand and text is not None:
            print_expanded(text, path, args.set)
        if args.format == "text":
            report(diagnostics, lines)
    if args.format != "text":
        from dltspec.formats import FORMATS

        output = FORMATS[args.format](sorted(everything, key=Diagnostic.sort_key))
        print(output) if output else None
    failed = any(d.is_error or args.warnings_as_errors for d in everything)
    return EXIT_ERRORS if failed else EXIT_OK


def cmd_schema(args) -> int:
    if args.markdown:
        from dltspec.lang.reference import markdown

        print(markdown(), end="")
        return EXIT_OK
    from dltspec.lang.schema import schema

    print(json.dumps(schema(), indent=2))
    return EXIT_OK


def cmd_lsp(args) -> int:
    try:
        from dltspec.lsp import serve
    except ImportError as exc:
        if exc.name not in ("pygls", "lsprotocol") and not str(exc.name).startswith(("pygls.", "lsprotocol.")):
            raise
        print("dltspec lsp: the language server needs pygls: pip install 'dltspec[lsp]'", file=sys.stderr)
        return EXIT_USAGE
    serve()
    return EXIT_OK
