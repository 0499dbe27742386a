"""``dltspec fmt``: specs rewritten in the canonical layout (:mod:`dltspec.lang.fmt`), checked, or diffed."""
from __future__ import annotations

import os
import sys

from dltspec.cli.common import EXIT_USAGE, report, spec_paths, spec_text
from dltspec.diagnostics import SpecError
from dltspec.lang.fmt import format_document, unified_diff


def cmd_fmt(args) -> int:
    paths = spec_paths(args.specs, "fmt")
    if paths is None:
        return EXIT_USAGE
    return fmt_paths(paths, check=args.check, diff=args.diff)


def fmt_one(path: str, check: bool, diff: bool, report) -> tuple[bool, bool]:
    """Format one file (``-``: stdin to stdout) as the flags say.

    Returns ``(failed, changed)``: ``failed`` when it could not be read or parsed
    (reported through ``report(diagnostics, lines)``), ``changed`` when its canonical
    form differs from it.
    """
    from dltspec.files import write_atomic  # looked up at the call: a test stands in for it

    name = path if path != "-" else "<stdin>"
    try:
        text = spec_text(path)
    except SpecError as exc:
        report(exc.diagnostics, lambda f: [])
        return True, False
    result, diagnostics = format_document(text, name)
    if result is None:
        report(diagnostics, lambda f: text.split("\n") if f == name else [])
        return True, False
    changed = result != text
    if check and changed:
        print(f"would reformat {name}")
    if diff and changed:
        sys.stdout.write(unified_diff(text, result, name))
    if not (check or diff):
        if path == "-":
            sys.stdout.write(result)
        elif changed:
            try:
                write_atomic(path, result.encode("utf-8"), mode=os.stat(path).st_mode & 0o7777)
            except OSError as exc:
                print(f"dltspec fmt: {name}: cannot write: {exc.strerror or exc}", file=sys.stderr)
                return True, changed
    return False, changed


def fmt_paths(paths, check: bool = False, diff: bool = False) -> int:
    """Run ``dltspec fmt`` over ``paths``; return the exit status.

    1 if a file could not be read, parsed or written, or if ``check``/``diff`` found a
    file that would change; 0 otherwise.
    """
    failed = changed = False
    for path in paths:
        one_failed, one_changed = fmt_one(path, check, diff, report)
        failed, changed = failed or one_failed, changed or one_changed
    return 1 if failed or ((check or diff) and changed) else 0
