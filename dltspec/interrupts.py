"""Ctrl-C and SIGTERM for the whole life of a ``dltspec`` process, from its first line to its exit.

Python's own handler raises ``KeyboardInterrupt`` wherever the main thread happens to be: in the
middle of importing a C extension (jaxlib has crashed with a segmentation fault after it), or
inside a garbage-collector callback, where the exception is printed and dropped and the command
goes on as if nothing had been asked. This module replaces it as the process starts
(:func:`install`):

- every signal is *recorded* (:data:`STATE`); a recorded signal is never forgotten;
- it is raised as ``KeyboardInterrupt`` at once, except inside :func:`deferred` (imports of the
  backends' native libraries), which raises it when the block ends;
- a signal that was swallowed (by a gc callback) is raised again at the next :func:`check`, which
  the CLI calls between its stages, and is seen by the training loop's stop request;
- after the command returned, a signal only changes a success's exit status to 128 + its number
  (:func:`exit_status`), and the process ends from its last exit handler (:func:`last_word`), so
  that tearing the interpreter down is never interrupted half way.
"""
from __future__ import annotations

import atexit
import os
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class State:
    """What has been asked of this process so far."""

    def __init__(self) -> None:
        self.signal: int | None = None  # the first signal received
        self.deferring = 0  # depth of deferred() blocks
        self.raising = True  # False once the command has returned: record only
        self.installed = False
        self.exit_code: int | None = None  # the status the command returned, for the last word at exit

    @property
    def pending(self) -> bool:
        return self.signal is not None


STATE = State()


def handle(signum: int, frame) -> None:
    """The handler of SIGINT and SIGTERM until the training loop takes them over."""
    if STATE.signal is None:
        STATE.signal = signum
    if STATE.raising and not STATE.deferring:
        raise KeyboardInterrupt


def install() -> None:
    """Take over SIGINT and SIGTERM (main thread only; a no-op elsewhere and the second time)."""
    if STATE.installed or threading.current_thread() is not threading.main_thread():
        return
    for signum in SIGNALS:
        signal.signal(signum, handle)
    STATE.installed = True
    default_hook = sys.unraisablehook

    def unraisable(info) -> None:  # a signal raised inside a gc callback: recorded already, not a traceback
        if not isinstance(info.exc_value, KeyboardInterrupt):
            default_hook(info)

    sys.unraisablehook = unraisable
    atexit.register(last_word)  # registered first, so it runs after every other exit handler


def check() -> None:
    """Raise ``KeyboardInterrupt`` if a signal was received and not acted on (it was swallowed)."""
    if STATE.pending and STATE.raising:
        raise KeyboardInterrupt


@contextmanager
def deferred() -> Iterator[None]:
    """Hold a signal received inside the block until the block ends (then ``KeyboardInterrupt``)."""
    STATE.deferring += 1
    try:
        yield
    finally:
        STATE.deferring -= 1
    if not STATE.deferring:
        check()


def finished(code: int) -> int:
    """The command returned ``code``: from now on signals are only recorded; the exit status."""
    STATE.raising = False
    STATE.exit_code = exit_status(code)
    return STATE.exit_code


def exit_status(code: int) -> int:
    """``code``, or 128 + the signal's number if one was received and ``code`` says success."""
    if STATE.pending and code == 0:
        return 128 + int(STATE.signal)
    return code


def last_word() -> None:
    """At exit, after every other exit handler: end the process with the command's status (128 + the
    signal's number if one came since it returned 0), its streams flushed.

    Python resets its signal handlers before tearing modules down (jax's teardown takes a few tenths
    of a second), and a Ctrl-C then would kill the process by the signal; nothing dltspec writes is
    left open by now (every file is written whole and closed), so the teardown is skipped instead.
    """
    if STATE.exit_code is None:  # the command did not return (an exception escaped): Python's own exit
        return
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(exit_status(STATE.exit_code))
