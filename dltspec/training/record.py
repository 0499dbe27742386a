"""Recording a run in its run directory (:mod:`dltspec.training.rundir`) as it trains, and resuming one.

:class:`Recorder` is an :class:`~dltspec.training.session.Observer`: at each validation point it appends a
metrics record, keeps snapshots as the spec's ``run`` block says, and every ``checkpoint_every``
points writes the best parameters and a checkpoint; when the loop ends it writes the final
checkpoint, the best parameters and ``summary.json``.
"""
from __future__ import annotations

import os
import shutil
import socket
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from dltspec.diagnostics import Diagnostic, Span, SpecError, warning
from dltspec.lang.spec import Spec
from dltspec.training import session
from dltspec.training.loop import ValidationPoint
from dltspec.training.params import ParamsError, save as save_params
from dltspec.training.progress import Rate, metric_record
from dltspec.training.provenance import now_iso, resume_differences, run_info, spec_as_run
from dltspec.training.rundir import (
    BEST,
    CHECKPOINT,
    METRICS,
    PRETRAIN,
    PRETRAINED,
    RUN,
    SUMMARY,
    RunDir,
    RunError,
    RunInUse,
    lock,
    metrics_line,
    unlock,
)
from dltspec.training.session import Observer, Result, Training


@contextmanager
def disk(what: str):
    """Failures to write the run directory on the loop's thread, as :class:`RunError` naming the file."""
    try:
        yield
    except OSError as exc:
        raise RunError(f"cannot write {exc.filename or what}: {exc.strerror or exc}") from None
    except ParamsError as exc:
        raise RunError(exc.message) from None


class Writer:
    """One background thread that writes a run's files, so that the training loop never waits for the disk.

    Writes are keyed by the file they replace and done in the order first asked for; a write
    asked for again before it started is replaced by the newer one (when checkpoints come faster
    than the disk takes them, only the newest is written: it supersedes the others).
    A write that fails stops the writes after it; the error is raised by the next :meth:`submit`
    or :meth:`drain`, as a :class:`RunError` that names the file. :meth:`close` ends the thread once
    what was asked for is written (a process that trains run after run, a sweep's worker, keeps no
    thread per run).
    """

    def __init__(self):
        import threading

        self.pending: dict[str, Callable[[], None]] = {}
        self.busy = False
        self.closed = False
        self.error: RunError | None = None
        self.changed = threading.Condition()
        self.thread = threading.Thread(target=self.work, name="dltspec-run-writer", daemon=True)
        self.thread.start()

    def work(self) -> None:
        while True:
            with self.changed:
                while not self.pending and not self.closed:
                    self.changed.wait()
                if not self.pending:  # closed, and everything written
                    return
                key = next(iter(self.pending))
                job = self.pending.pop(key)
                self.busy = True
            try:
                if self.error is None:
                    job()
            except OSError as exc:
                self.error = RunError(f"cannot write {exc.filename or 'the run directory'}: {exc.strerror or exc}")
            except Exception as exc:  # noqa: BLE001 - anything else, reported on the loop's thread
                self.error = RunError(f"writing the run directory failed: {type(exc).__name__}: {exc}")
            finally:
                with self.changed:
                    self.busy = False
                    self.changed.notify_all()

    def raise_error(self) -> None:
        if self.error is not None:
            raise self.error

    def submit(self, key: str, job: Callable[[], None]) -> None:
        self.raise_error()
        with self.changed:
            if self.closed:
                raise RuntimeError("this run's writer is closed")
            self.pending[key] = job
            self.changed.notify_all()

    def drain(self) -> None:
        """Wait until every write asked for is done."""
        with self.changed:
            while self.pending or self.busy:
                self.changed.wait()
        self.raise_error()

    def close(self) -> None:
        """End the thread after the writes asked for (no more may be asked)."""
        with self.changed:
            self.closed = True
            self.changed.notify_all()


class Recorder(Observer):
    """Writes a run's metrics, snapshots, checkpoints, best parameters and summary as it trains.

    Metrics are appended on the loop's thread (a line each, flushed); snapshots, best parameters
    and checkpoints are captured there (references, or one copy) and written by a :class:`Writer`:
    ``best.pkl`` (when it changed), then the metrics file synced, then ``checkpoint.pkl``. When the
    loop ends, every pending write is finished before the final ones. When the run asks for TensorBoard
    events (``tensorboard``: their base folder, see :func:`dltspec.training.tensorboard.folder_of`; else
    the spec's ``run.tensorboard``), each metrics record is written there too, after the metrics file,
    with ``hparams`` (a sweep's variant: its swept values) as the HParams plugin's hyper-parameters.
    """

    def __init__(self, run: RunDir, spec: Spec, resumed: int = 0, tensorboard: Path | None = None,
                 hparams: dict | None = None):
        options = {"checkpoint_every": 1, "snapshot_every": 0, "snapshot_best": False, "keep_snapshots": 5,
                   **spec.data.get("run", {})}
        self.run, self.options, self.resumed = run, options, resumed
        self.events_folder = tensorboard_folder(run.path, spec.data, tensorboard)
        self.hparams = hparams
        self.events = None  # the TensorBoard event log, while the loop runs (when the run asks for one)
        self.best_pending = False
        self.rate = Rate()
        self.writer = Writer()
        self.metrics = None  # metrics.jsonl, open for appending while the loop runs
        self.best_to_write = self.best_written = None  # (snapshot, metadata) of the best parameters
        self.summary: dict = {}  # the last summary.json written

    def started(self, training: Training) -> None:
        self.rate.start(training)
        with disk(str(self.run.file(METRICS))):
            self.metrics = self.run.metrics_log()
        if self.events_folder is not None:
            self.events = open_events(self.events_folder, self.hparams, self.run)
        self.write_summary(training, "running")

    def validation(self, point: ValidationPoint, training: Training) -> None:
        record = metric_record(point, training, self.rate.of(point, training.batch_size))
        with disk(str(self.run.file(METRICS))):
            self.metrics.write(metrics_line(record))
            self.metrics.flush()
        if self.events is not None:
            with disk(str(self.events_folder)):
                self.events.write(record)
        n = training.state.validations
        if point.is_best:
            self.best_pending = True
            if self.options["snapshot_best"]:
                self.snapshot(point.iteration, training.best, training)
        if self.options["snapshot_every"] and n % self.options["snapshot_every"] == 0:
            self.snapshot(point.iteration, training.program.snapshot(), training)
        if n % self.options["checkpoint_every"] == 0:
            self.checkpoint(training)

    def snapshot(self, iteration: int, snapshot, training: Training) -> None:
        path, program = self.run.snapshot_path(iteration), training.program
        meta = {**session.training_metadata(training), "iteration": iteration + 1}

        def write() -> None:
            path.parent.mkdir(exist_ok=True)
            save_params(path, program.arrays(snapshot), meta)
            self.run.prune_snapshots(self.options["keep_snapshots"])

        self.writer.submit(str(path), write)

    def checkpoint(self, training: Training) -> None:
        """The best parameters (if they changed since they were last written), then the metrics synced
        and the checkpoint, each atomically, in that order: one write, which a newer one supersedes
        (carrying the newest best parameters with it)."""
        state, program = training.capture(), training.program
        if self.best_pending and training.best is not None:
            self.best_to_write = (training.best, session.training_metadata(training))
        self.best_pending = False
        best = self.best_to_write

        def write() -> None:
            if best is not None and best is not self.best_written:
                save_params(self.run.file(BEST), program.arrays(best[0]), best[1])
                self.best_written = best
            self.run.sync_metrics()
            self.run.write_checkpoint(state())

        self.writer.submit(CHECKPOINT, write)

    def pretrain_epoch(self, epoch, training: Training) -> None:
        """A line of ``pretrain.jsonl``; a checkpoint every epoch (an epoch is long: the SdA's is 50,000 steps)."""
        with disk(str(self.run.file(PRETRAIN))):
            self.run.append_pretrain(epoch.record())
        self.checkpoint(training)

    def pretrained(self, training: Training) -> None:
        """``pretrained.pkl``: the pre-trained network and what the phases added (``b_prime``, ``vbias``)."""
        values, extras = training.program.values(), {k: v.copy() for k, v in training.extras.items()}
        meta = {**session.training_metadata(training), "pretrained": True}
        self.writer.submit(PRETRAINED, lambda: save_params(self.run.file(PRETRAINED), {**values, **extras}, meta))

    def finished(self, result: Result, training: Training) -> None:
        if result.stopped_by != "diverged":  # a diverged state is not worth going on from: keep the last good one
            self.checkpoint(training)
        try:
            self.writer.drain()
        finally:
            self.writer.close()
            unlock(self.run.path)
        with disk(str(self.run.file(BEST))):
            if self.metrics is not None:
                self.metrics.close()
            self.close_events()
            if result.params:
                save_params(self.run.file(BEST), result.params, session.result_metadata(result))
        self.write_summary(training, "finished" if result.finished else result.stopped_by, result)

    def failed(self, training: Training, message: str) -> None:
        """Say in the summary that writing failed, if the disk still lets us."""
        self.writer.close()
        unlock(self.run.path)
        try:
            if self.metrics is not None:
                self.metrics.close()
            self.close_events()
            self.write_summary(training, "failed", problems=[message])
        except (OSError, RunError):
            pass

    def close_events(self) -> None:
        if self.events is not None:
            self.events.close()
            self.events = None

    def write_summary(self, training: Training, status: str, result: Result | None = None,
                      problems: list[str] = ()) -> None:
        summary = {
            "status": status, "name": training.spec.name,
            "best_validation_error": training.policy.best_validation_loss if training.policy.best_iter >= 0 else None,
            "best_iteration": training.policy.best_iter + 1 if training.policy.best_iter >= 0 else None,
            "test_error": training.state.test_score,
            "epochs": result.epochs if result else training.state.iteration // training.policy.n_train_batches + 1,
            "iterations": training.state.iteration + 1,
            "stopped_by": result.stopped_by if result else None,
            "seconds": round(result.seconds if result else training.state.seconds, 3),
            "backend": training.backend, "floatX": training.floatX, "device": training.device,
            "resumed": self.resumed, "host": socket.gethostname(), "pid": os.getpid(), "updated": now_iso(),
            "versions": session.versions(training.backend),
            "problems": [d.message for d in result.problems] if result else list(problems),
        }
        with disk(str(self.run.file(SUMMARY))):
            self.run.write_json(SUMMARY, summary)
        self.summary = summary


def tensorboard_folder(run_path: Path, spec_data: dict, base: Path | None) -> Path | None:
    """Where a run's TensorBoard events go, or ``None`` (see :func:`dltspec.training.tensorboard.folder_of`)."""
    if base is None and not spec_data.get("run", {}).get("tensorboard"):
        return None  # the module (and tensorboardX) imported only for a run that asks
    from dltspec.training.tensorboard import folder_of

    return folder_of(run_path, spec_data, base)


def open_events(folder: Path, hparams: dict | None, run: RunDir):
    """The run's TensorBoard event log, holding the records ``metrics.jsonl`` has already (a resumed run's);
    :class:`RunError` if tensorboardX is missing or the folder cannot be written."""
    from dltspec.training.tensorboard import EventLog, TensorBoardMissing

    try:
        with disk(str(folder)):
            return EventLog(folder, hparams, run.metrics())
    except TensorBoardMissing as exc:
        raise RunError(f"{exc.message}: {exc.notes[0]}") from None


def start_run(spec: Spec, out: Path | None, backend: str, floatX: str, device: str | None,
              source: Path | None = None, tensorboard: Path | None = None,
              hparams: dict | None = None) -> tuple[RunDir, Recorder]:
    """A new run directory with the spec as run (its data read from ``source``) and ``run.json``
    written in it, and its recorder (``tensorboard``, ``hparams``: see :class:`Recorder`). Raises
    :class:`RunError`."""
    run = RunDir.create(spec.name, out)
    as_run = spec_as_run(spec, source)
    try:
        run.write_spec(as_run)
        run.write_json(RUN, {**run_info(spec, as_run, backend, floatX, device),
                             "data": str(source.resolve()) if source is not None else None})
        run.write_json(SUMMARY, {"status": "starting", "name": spec.name, "updated": now_iso()})
    except OSError as exc:
        raise RunError(f"cannot write in {run.path}: {exc.strerror or exc}") from None
    return run, Recorder(run, spec, tensorboard=tensorboard, hparams=hparams)


def open_run(path: Path) -> tuple[RunDir, dict]:
    """The run at ``path`` and its last checkpoint; :class:`RunError` if there is none."""
    run = RunDir.open(path)
    return run, run.read_checkpoint()


def resume(run: RunDir, checkpoint: dict, training: Training, force: bool, where: Span,
           tensorboard: Path | None = None, hparams: dict | None = None) -> tuple[Recorder | None, list[Diagnostic]]:
    """Restore ``training`` from ``checkpoint`` and return the recorder that goes on writing ``run``.

    When this run differs from the one checkpointed (the spec, the backend, the float type,
    the device), the differences are errors and nothing is restored (recorder ``None``), unless
    ``force``: then they are warnings and the run goes on.
    """
    problems = resume_differences(checkpoint, training, run, where)
    if problems and not force:
        return None, problems
    try:
        training.restore(checkpoint)
    except SpecError as exc:  # cannot go on, forced or not
        return None, problems + exc.diagnostics
    with disk(str(run.file(METRICS))):
        run.keep_metrics(training.state.validations)
        if training.pretrain is not None:
            run.keep_pretrain(training.pretrain.records)
    resumed = run.summary().get("resumed")  # lost or damaged: count from here
    resumed = (resumed if isinstance(resumed, int) else 0) + 1
    warnings = [warning(d.code, d.message, d.span, *d.notes) for d in problems]
    return Recorder(run, training.spec, resumed, tensorboard, hparams), warnings


__all__ = ["Begun", "Recorder", "RunError", "RunStartError", "begin", "open_run", "resume", "spec_as_run", "start_run"]


#: how long a sweep's variant, rescheduled from a worker the cluster lost, waits for that worker's process to
#: end and release the run's lock (the scheduler may reschedule as soon as it loses contact)
RETAKE_SECONDS = 60.0


class RunStartError(RunError):
    """The run directory cannot be created, or the run to resume cannot be opened (nothing was compiled)."""


class RunFinished(RunStartError):
    """The run to resume has finished: nothing to do (and nothing is written)."""


@dataclass
class Begun:
    """A run ready to train: its directory, the compiled spec (restored when resumed) and its recorder.

    ``recorder`` is ``None`` when the checkpoint was refused (``problems`` say why); ``resumed`` says
    whether training goes on from a checkpoint."""

    run: RunDir
    training: Training
    recorder: Recorder | None
    problems: list[Diagnostic]
    resumed: bool = False


def begin(spec: Spec, compile_training: Callable[[], Training], backend: str, floatX: str, device: str | None, *,
          out: Path | None = None, resume_from: Path | None = None, force: bool = False, where: Span | None = None,
          source: Path | None = None, restart: bool = False, tensorboard: Path | None = None,
          hparams: dict | None = None) -> Begun:
    """Start a run in a new directory (``out``), or go on with the one in ``resume_from``: the one
    start-or-resume of ``dltspec run`` and of a sweep's variants.

    The directory is created or opened first (:class:`RunStartError` if it cannot be), then the spec
    is compiled (``compile_training()``), then a resumed run is restored from its checkpoint (see
    :func:`resume`; ``where`` locates its problems). ``restart``: a run that cannot be resumed (no
    directory, no checkpoint, or one of another spec) is started again, in the same directory.
    ``tensorboard``: write the TensorBoard events in ``tensorboard/<run directory name>`` (else in the
    run directory when the spec's ``run.tensorboard`` is true); ``hparams``: the hyper-parameters
    they name (a sweep's variant: its swept values).
    """
    events = {"tensorboard": tensorboard, "hparams": hparams}
    checkpoint, run, recorder = None, None, None
    if resume_from is not None:
        try:
            if Path(resume_from).is_dir():  # before anything is read; a sweep's variant waits for a lost worker
                lock(Path(resume_from), wait=RETAKE_SECONDS if restart else 0.0)  # whose process is still ending
            run, checkpoint = open_run(Path(resume_from))
        except RunError as exc:
            if not restart or isinstance(exc, RunInUse):  # a run in use is never started again over its owner
                raise RunStartError(str(exc)) from None
            out = Path(resume_from)
        same_spec = checkpoint is not None and checkpoint.get("spec_sha256") == spec.source.sha256
        if same_spec and checkpoint.get("done") and not force and not restart:  # (another spec: its differences)
            unlock(run.path)
            stopped = run.summary().get("stopped_by") or "its stopping policy"
            raise RunFinished(f"{run.path} has finished ({stopped}): nothing to resume, and nothing was changed; "
                              "--force goes on with this spec's settings (a larger n_epochs trains longer)")
    if checkpoint is None:
        if restart and out is not None:
            shutil.rmtree(out, ignore_errors=True)  # what an earlier try left without a checkpoint
        try:
            run, recorder = start_run(spec, out, backend, floatX, device, source, **events)
            lock(run.path)
        except RunError as exc:
            raise RunStartError(str(exc)) from None
        try:
            training = compile_training()
        except KeyboardInterrupt:  # stopped while compiling: the directory says so, and holds no checkpoint
            run.never_trained(spec.name, now_iso())
            unlock(run.path)
            raise
        return Begun(run, training, recorder, [])
    training = compile_training()
    recorder, problems = resume(run, checkpoint, training, force, where or Span.point(str(run.path)), **events)
    if recorder is None and restart:
        shutil.rmtree(run.path, ignore_errors=True)
        run, recorder = start_run(spec, run.path, backend, floatX, device, source, **events)
        return Begun(run, training, recorder, [])
    return Begun(run, training, recorder, problems, resumed=recorder is not None)
