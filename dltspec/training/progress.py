"""What ``dltspec run`` shows while it trains: one observer per style, picked by :func:`progress`.

- ``bar`` (a terminal): a live bar per epoch (tqdm, on standard error) with the current
  validation error, the best so far, the patience left and examples/s; each validation
  point is also printed as a line above it;
- ``lines`` (a pipe, a CI log): those lines only, no control characters;
- ``json``: one JSON object per event on standard output (``start``, ``validation``, ``end``),
  for scripts;
- ``quiet``: nothing.

The Python API (:func:`dltspec.train`) shows :class:`AutoBar` instead, tqdm's auto mode: a widget in
Jupyter, by default there only (:func:`api_progress`).
"""
from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from typing import TextIO

from dltspec.training.loop import ValidationPoint
from dltspec.training.session import Observer, Result, Training


def validation_line(point: ValidationPoint, examples_per_s: float) -> str:
    best = (f"new best, test error {point.test_error * 100:f} %" if point.is_best
            else f"best {point.best_validation_error * 100:f} %")
    return (f"epoch {point.epoch}, minibatch {point.minibatch}/{point.n_train_batches}: "
            f"validation error {point.validation_error * 100:f} % ({best}), "
            + (f"patience {int(point.patience)}, " if point.patience is not None else "")
            + f"cost {point.mean_cost:.4f}, {examples_per_s:,.0f} examples/s")


def metric_record(point: ValidationPoint, training: Training, examples_per_s: float) -> dict:
    """What a validation point says, as a line of ``metrics.jsonl`` and a ``--json`` event; ``iteration``
    counts minibatches trained (the tutorial's ``iter + 1``)."""
    return {
        "epoch": point.epoch, "minibatch": point.minibatch, "iteration": point.iteration + 1,
        "mean_cost": point.mean_cost, "validation_error": point.validation_error,
        "best_validation_error": point.best_validation_error, "is_best": point.is_best,
        "test_error": point.test_error, "patience": point.patience,
        **training.hyper(),
        "seconds": round(point.seconds, 6), "examples_per_s": round(examples_per_s, 1),
    }


class Rate:
    """Examples per second between two validation points."""

    def __init__(self):
        self.last = (-1, 0.0)

    def start(self, training: Training) -> None:
        self.last = (training.state.iteration, training.state.seconds)

    def of(self, point: ValidationPoint, batch_size: int) -> float:
        steps, elapsed = point.iteration - self.last[0], point.seconds - self.last[1]
        self.last = (point.iteration, point.seconds)
        return steps * batch_size / max(elapsed, 1e-9)


def pretrain_line(epoch) -> str:
    return (f"pre-training {epoch.layer} ({epoch.kind}, layer {epoch.phase + 1}/{epoch.n_phases}), "
            f"epoch {epoch.epoch}/{epoch.n_epochs}: cost {epoch.cost:.6f}, {epoch.seconds:.1f} s")


class Lines(Observer):
    """A line per validation point, and one when the first minibatch has trained."""

    def __init__(self, out: TextIO | None = None, started_at: float | None = None):  # None: sys.stdout, as it is now
        self.out, self.started_at, self.rate, self.first = out or sys.stdout, started_at, Rate(), True

    def started(self, training):
        self.rate.start(training)

    def chunk(self, training):
        if self.first and self.started_at is not None:
            print(f"first training step done {time.perf_counter() - self.started_at:.1f} s after start",
                  file=self.out, flush=True)
        self.first = False

    def validation(self, point, training):
        print(validation_line(point, self.rate.of(point, training.batch_size)), file=self.out, flush=True)

    def pretrain_epoch(self, epoch, training):
        print(pretrain_line(epoch), file=self.out, flush=True)


class Bar(Lines):
    """A live tqdm bar on a terminal, one pass per epoch, the validation lines printed above it.

    It is redrawn at most every ``interval`` seconds (and at each validation), so that drawing
    costs nothing measurable however short the chunks are.
    """

    def __init__(self, out: TextIO | None = None, started_at: float | None = None, interval: float = 0.1):
        super().__init__(out or sys.stderr, started_at)
        self.bar, self.epoch, self.postfix, self.interval, self.drawn = None, None, "", interval, 0.0

    def chunk(self, training):
        super().chunk(training)
        n = training.policy.n_train_batches
        iteration = training.state.iteration
        epoch = iteration // n + 1
        now = time.perf_counter()
        if epoch == self.epoch and now - self.drawn < self.interval:
            return
        if self.bar is None:
            self.bar = self.new_bar(n)
        if epoch != self.epoch:
            self.epoch = epoch
            self.bar.reset(total=n)
            self.bar.set_description_str(f"epoch {epoch}", refresh=False)
        self.bar.n = iteration % n + 1
        left = max(0, int(training.policy.patience) - iteration)
        shown = f"patience left {left}" if training.policy.has_patience else f"of {training.policy.n_epochs} epochs"
        self.bar.set_postfix_str(f"{self.postfix}{shown}", refresh=True)
        self.drawn = now

    def new_bar(self, n: int):
        """The terminal's bar: as wide as the terminal, on ``self.out``."""
        import shutil

        from tqdm import tqdm

        width = shutil.get_terminal_size((100, 24)).columns  # a terminal that reports 0 columns: 100
        return tqdm(total=n, unit="batch", file=self.out, leave=False, ncols=width,
                    bar_format="{desc} {bar} {n_fmt}/{total_fmt} {postfix}")

    def write(self, line: str) -> None:
        """A line above the bar."""
        from tqdm import tqdm

        tqdm.write(line, file=self.out)

    def validation(self, point, training):
        rate = self.rate.of(point, training.batch_size)
        self.postfix = (f"valid {point.validation_error * 100:.2f} %, best {point.best_validation_error * 100:.2f} %, "
                        f"{rate:,.0f} ex/s, ")
        self.write(validation_line(point, rate))
        self.drawn = 0.0  # show the new figures at the next chunk

    def finished(self, result, training):
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def in_notebook() -> bool:
    """Whether this process is a Jupyter kernel (IPython's kernel app is running), as tqdm.autonotebook tells."""
    ipython = sys.modules.get("IPython")
    try:
        shell = ipython.get_ipython() if ipython is not None else None
        return shell is not None and "IPKernelApp" in shell.config
    except Exception:  # noqa: BLE001 - an IPython that cannot say: not a notebook
        return False


class AutoBar(Bar):
    """The Python API's bar: tqdm.auto's, a widget in Jupyter (with ipywidgets) and text elsewhere; the
    validation lines are printed above it (in Jupyter, on standard output: the cell's output)."""

    def __init__(self, out: TextIO | None = None, interval: float = 0.1):
        super().__init__(out or (sys.stdout if in_notebook() else sys.stderr), None, interval)

    def new_bar(self, n: int):
        from tqdm.auto import tqdm

        return tqdm(total=n, unit="batch", leave=False, file=self.out)

    def write(self, line: str) -> None:
        from tqdm.auto import tqdm

        tqdm.write(line, file=self.out)


def api_progress(progress: bool | None) -> Observer | None:
    """The Python API's progress: an :class:`AutoBar` when ``progress`` is true, or when it is ``None``
    and this is a Jupyter kernel; else none."""
    return AutoBar() if progress or (progress is None and in_notebook()) else None


class Events(Observer):
    """JSON events on standard output, one object per line."""

    def __init__(self, out: TextIO | None = None):
        self.out, self.rate = out or sys.stdout, Rate()

    def emit(self, event: str, **fields) -> None:
        from dltspec.training.rundir import json_value

        print(json.dumps(json_value({"event": event, **fields})), file=self.out, flush=True)

    def started(self, training):
        self.rate.start(training)
        self.emit("start", name=training.spec.name, backend=training.backend, device=training.device,
                  n_train_batches=training.policy.n_train_batches, batch_size=training.batch_size,
                  iteration=training.state.iteration + 1)

    def validation(self, point, training):
        self.emit("validation", **metric_record(point, training, self.rate.of(point, training.batch_size)))

    def pretrain_epoch(self, epoch, training):
        self.emit("pretrain", **epoch.record())

    def finished(self, result: Result, training):
        self.emit("end", stopped_by=result.stopped_by, best_validation_error=result.best_validation_error,
                  best_iteration=result.best_iteration, test_error=result.test_error, epochs=result.epochs,
                  iterations=result.iterations, seconds=result.seconds,
                  problems=[d.message for d in result.problems])


#: style -> observer factory (``started_at``: when the command started, for the first-step line)
STYLES: dict[str, Callable[[float | None], Observer]] = {
    "bar": lambda started_at: Bar(sys.stderr, started_at),
    "lines": lambda started_at: Lines(sys.stdout, started_at),
    "json": lambda started_at: Events(sys.stdout),
    "quiet": lambda started_at: Observer(),
}


def style_for(quiet: bool, as_json: bool, stream: TextIO | None = None) -> str:
    """``json`` or ``quiet`` when asked; else a bar on a terminal, lines elsewhere (pipes, CI)."""
    if as_json:
        return "json"
    if quiet:
        return "quiet"
    return "bar" if (stream or sys.stderr).isatty() else "lines"
