"""What recording a run costs: the same compiled model trained with and without its run directory and progress.

    DLTSPEC_DATA=../shared/data python bench/logging_overhead.py            # MNIST logistic, 15 epochs x 5
    python bench/logging_overhead.py --spec specs/digits.dlt --epochs 100   # no MNIST needed

One process compiles the spec once (JAX on the CPU by default); each repeat then trains it from
the same initial parameters in three ways, in turn: bare (no observer), recorded (run directory:
metrics, a checkpoint and best.pkl at every validation point, and progress lines to /dev/null),
and recorded with the live bar (tqdm, to /dev/null as if it were a terminal). Reports medians
of the training seconds and the ratios, and rewrites its section of bench/RESULTS.md.
The issue's aim: under 2 % difference.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from results import publish  # noqa: E402

import dltspec  # noqa: E402
from dltspec import api  # noqa: E402
from dltspec.training.loop import LoopState, Patience  # noqa: E402
from dltspec.training.progress import Bar, Lines  # noqa: E402
from dltspec.training.record import Recorder  # noqa: E402
from dltspec.training.rundir import RunDir  # noqa: E402

BEGIN, END = "<!-- logging:begin (bench/logging_overhead.py rewrites this section) -->", "<!-- logging:end -->"


class Timed(api.Observer):
    """Another observer, with the seconds spent in it on the training loop's thread added up."""

    def __init__(self, inner):
        self.inner, self.spent = inner, 0.0

    def timed(self, method, *args):
        start = time.perf_counter()
        method(*args)
        self.spent += time.perf_counter() - start

    def started(self, training):
        self.timed(self.inner.started, training)

    def chunk(self, training):
        self.timed(self.inner.chunk, training)

    def validation(self, point, training):
        self.timed(self.inner.validation, point, training)

    def finished(self, result, training):
        self.timed(self.inner.finished, result, training)


class Terminal:
    """/dev/null that says it is a terminal, so the bar draws as it would on one."""

    def __init__(self):
        self.sink = open(os.devnull, "w")

    def write(self, text):
        return self.sink.write(text)

    def flush(self):
        self.sink.flush()

    def isatty(self):
        return True


def reset(training: api.Training, initial: dict) -> None:
    training.program.set_values(initial)
    training.policy = Patience.from_block(training.spec.block("stopping"), training.policy.n_train_batches)
    training.state, training.best = LoopState(), None


def observers(mode: str, folder: Path, k: int) -> Timed:
    if mode == "bare":
        return Timed(api.Observer())
    run = RunDir.create("bench", folder / f"{mode.replace(' ', '')}-{k}")
    progress = Lines(open(os.devnull, "w")) if mode == "recorded" else Bar(Terminal())
    return Timed(api.Observers(Recorder(run, SPEC_HOLDER[0]), progress))


SPEC_HOLDER: list = []
MODES = ("bare", "recorded", "recorded + bar")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--spec", default=str(ROOT / "specs" / "logistic_sgd.dlt"))
    p.add_argument("--epochs", type=int, default=15)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--backend", default="jax")
    p.add_argument("--checkpoint-every", type=int, default=1, help="validation points between checkpoints")
    p.add_argument("--no-write", action="store_true", help="print only; leave RESULTS.md alone")
    args = p.parse_args(argv)
    spec = dltspec.read(args.spec, overrides=[f"stopping.n_epochs={args.epochs}", "stopping.patience=10000000",
                                              f"run.checkpoint_every={args.checkpoint_every}"])
    SPEC_HOLDER.append(spec)
    training = api.compile_training(spec, backend=args.backend, device="cpu" if args.backend == "jax" else None)
    initial = training.program.values()
    reset(training, initial)
    training.run()  # warm-up: compiles what is compiled lazily
    seconds = {mode: [] for mode in MODES}
    inside = {mode: [] for mode in MODES}
    with tempfile.TemporaryDirectory() as folder:
        for k in range(args.repeats):
            for mode in MODES:
                reset(training, initial)
                observer = observers(mode, Path(folder), k)
                result = training.run(observer)
                seconds[mode].append(result.seconds)
                inside[mode].append(observer.spent / result.seconds)
                print(f"repeat {k + 1} {mode}: {result.seconds:.3f} s, {observer.spent * 1000:.1f} ms in observers",
                      flush=True)
    median = {mode: statistics.median(v) for mode, v in seconds.items()}
    share = {mode: statistics.median(v) for mode, v in inside.items()}
    n = training.policy.n_train_batches
    shown_spec = Path(args.spec).relative_to(ROOT) if Path(args.spec).is_relative_to(ROOT) else args.spec
    lines = [
        "## Logging overhead (issue 7)", "",
        f"`python bench/logging_overhead.py --spec {shown_spec} "
        f"--epochs {args.epochs} --repeats {args.repeats} --checkpoint-every {args.checkpoint_every}`: "
        f"{spec.name}, {args.backend} on the CPU, {args.epochs} epochs of {n} "
        f"minibatches, validating every {training.policy.validation_frequency} and checkpointing at every "
        f"{args.checkpoint_every} validation point(s); "
        f"this machine ({os.cpu_count()} cores). Medians of {args.repeats} runs, "
        "the modes interleaved.", "",
        "| mode | seconds | ratio to bare | time in the observers, share of the run |", "|---|---|---|---|",
        *[f"| {mode} | {median[mode]:.3f} | {median[mode] / median['bare']:.3f} | {share[mode] * 100:.2f} % |"
          for mode in MODES], "",
        "The ratio of whole runs carries the machine's noise (a few per cent between repeats of the same "
        "mode); the time spent in the observers on the loop's thread (writing metrics, capturing "
        "checkpoints, drawing) is the cost itself. The files are written by a background thread.", "",
    ]
    publish(BEGIN, END, lines, write=not args.no_write)
    return 0


if __name__ == "__main__":
    sys.exit(main())
