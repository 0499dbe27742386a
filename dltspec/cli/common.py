"""What every command shares: reading specs, reporting diagnostics, exit codes, signals, usage errors."""
from __future__ import annotations

import argparse
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from dltspec import api
from dltspec.diagnostics import Diagnostic
from dltspec.lang.spec import Source
from dltspec.render import text as render_text

EXIT_OK, EXIT_ERRORS, EXIT_USAGE, EXIT_DIVERGED, EXIT_INTERRUPTED, EXIT_BROKEN_PIPE = 0, 1, 2, 3, 130, 141
EXIT_INTERNAL = 70  # an exception no stage turned into a diagnostic (BSD's EX_SOFTWARE): a bug in dltspec
STARTED = time.perf_counter()  # when the command's module was imported: its start, near enough


def source_lines(path: str, text: str, overrides: Sequence[str]):
    source = Source(path, text, Path("."), tuple(overrides))
    return source.lines


def report(diagnostics: Sequence[Diagnostic], lines) -> None:
    if diagnostics:
        print(render_text(diagnostics, lines), file=sys.stderr)


def spec_text(path: str) -> str:
    if path == "-":
        text = sys.stdin.read()
        return text[1:] if text.startswith("\ufeff") else text
    return api.read_text(path)


def diagnose_path(path: str, overrides: Sequence[str], max_variants: int | None = None):
    """Read and check the spec at ``path`` (``-``: standard input); ``max_variants``: as
    :func:`dltspec.api.diagnose` (0: leave a sweep's variants to the caller).

    Returns ``(spec, diagnostics, lines, text)``: ``spec`` is ``None`` when it has errors,
    ``lines`` looks up source lines for rendering. Raises :class:`SpecError` if unreadable.
    """
    text = spec_text(path)
    name = path if path != "-" else "<stdin>"
    base = Path(path).resolve().parent if path != "-" else Path.cwd()
    spec, diagnostics = api.diagnose(text, name, base, overrides, max_variants)
    return spec, diagnostics, source_lines(name, text, overrides), text


def read_spec(args):
    """Read and check the spec named on the command line; report its diagnostics.

    Returns ``(spec, lines)``; ``spec`` is ``None`` when it has errors (already reported).
    """
    spec, diagnostics, lines, _text = diagnose_path(args.spec, args.set)
    report(diagnostics, lines)
    return spec, lines


def resolve_placement(args, load: bool = True) -> bool:
    """Set ``args.backend`` and ``args.device`` from ``--backend`` and ``--device``; on failure
    print one line and return ``False``. ``load=False``: jax and PyTensor are not imported here unless a GPU
    is looked for (a sweep's client: its workers train)."""
    from dltspec import interrupts
    from dltspec.backends.devices import DeviceError, placement

    try:
        with interrupts.deferred():  # jaxlib and PyTensor's native parts are not to be stopped half-loaded
            args.backend, args.device = placement(args.backend, args.device, load)
            if load:
                import pytensor  # noqa: F401
    except DeviceError as exc:
        print(f"dltspec {args.command}: {exc}", file=sys.stderr)
        return False
    return True


class StopRequest:
    """SIGINT and SIGTERM ask the loop to stop after the minibatches in flight (the loop checkpoints
    there); a second SIGINT stops at once."""

    def __init__(self, at_once: bool = False):
        self.signal: int | None = None
        self.announced = False
        self.previous: dict = {}
        self.at_once = at_once  # raise KeyboardInterrupt at the first signal (nothing polls it)

    def __call__(self) -> bool:
        """Asked by the loop between chunks; says so the first time it stops (not from the handler:
        writing to a stream there could interrupt another write to it)."""
        if self.signal is not None and not self.announced:
            self.announced = True
            print(f"dltspec run: {signal.Signals(self.signal).name}: stopping after this minibatch and writing a "
                  "checkpoint (Ctrl-C again to stop at once)", file=sys.stderr, flush=True)
        return self.signal is not None

    def handle(self, signum, frame) -> None:
        from dltspec import interrupts

        if interrupts.STATE.signal is None:
            interrupts.STATE.signal = signum
        if self.at_once or (self.signal is not None and signum == signal.SIGINT):
            self.signal = self.signal or signum
            if not interrupts.STATE.deferring:  # else raised where the deferred block ends
                raise KeyboardInterrupt
        self.signal = self.signal or signum

    def __enter__(self) -> StopRequest:
        from dltspec import interrupts

        if interrupts.STATE.pending:  # asked before this began, and swallowed on the way (a gc callback)
            if self.at_once:
                raise KeyboardInterrupt
            self.signal = interrupts.STATE.signal  # training stops at its first chance, with a checkpoint
        for sig in (signal.SIGINT, signal.SIGTERM):
            self.previous[sig] = signal.signal(sig, self.handle)
        return self

    def __exit__(self, *exc) -> None:
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)

    @property
    def exit_code(self) -> int:
        return 128 + int(self.signal or signal.SIGINT)


def spec_paths(names: Sequence[str], command: str = "check") -> list[str] | None:
    """The files named on the command line, a directory standing for every ``*.dlt`` below it;
    ``None`` (usage error, reported) if a path does not exist, a directory holds no spec, or
    standard input (``-``) is named twice."""
    if names.count("-") > 1:
        return usage(command, "standard input ('-') can be named only once")
    paths = []
    for name in names:
        if name == "-":
            paths.append(name)
        elif Path(name).is_dir():
            found = sorted(str(p) for p in Path(name).rglob("*.dlt") if p.is_file())  # no FIFO, device, folder
            if not found:
                return usage(command, f"{name}: no *.dlt files in this directory")
            paths += found
        elif Path(name).exists():
            paths.append(name)
        else:
            return usage(command, f"{name}: no such file or directory")
    return paths


def usage(command: str, message: str) -> None:
    """Report a usage problem of ``dltspec COMMAND``; the caller exits 2."""
    print(f"dltspec {command}: {message}", file=sys.stderr)
    return None


def count(text: str) -> int:
    """A whole number >= 0, for argparse."""
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"expected a whole number >= 0, got '{text}'")
    return int(text)


def memory_size(text: str) -> int:
    from dltspec.data.stream import SizeError, parse_size

    try:
        return parse_size(text)
    except SizeError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
