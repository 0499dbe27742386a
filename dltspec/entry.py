"""The ``dltspec`` executable: signals are taken over before anything heavy is imported.

:func:`main` is the console script (and ``python -m dltspec``); :func:`dltspec.cli.main` is the
command line itself, which tests and embedding programs call in-process.
"""
from __future__ import annotations

import signal
import sys

from dltspec import interrupts


def main() -> int:
    interrupts.install()
    try:
        from dltspec.cli import main as command_line

        code = command_line()
    except SystemExit as exc:  # argparse: --help, --version, a usage error
        interrupts.finished(exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1))
        raise
    except KeyboardInterrupt:  # before the command line's own boundary exists (while it is imported)
        code = interrupts.finished(128 + int(interrupts.STATE.signal or signal.SIGINT))
        print("dltspec: interrupted", file=sys.stderr)
        return code
    return interrupts.finished(code)
