"""TensorBoard event files of a run: another sink of the records ``metrics.jsonl`` holds.

A run asked for it (``run { tensorboard = true }``, or ``dltspec run --tensorboard DIR``) gets its
validation points written as TensorBoard scalars, one per record, at step ``iteration`` (minibatches
trained, as ``metrics.jsonl`` counts them): the training cost, the errors, the learning rate (and
momentum), the patience and the speed, under the tags of :data:`SCALARS`. A sweep's variant also
gets its swept values as hyper-parameters (the HParams plugin), so that ``tensorboard --logdir
sweeps/NAME`` compares the variants.

The events are always those of ``metrics.jsonl``: a resumed run, whose metrics were cut back to its
checkpoint, writes them again into a new event file and removes the older ones, so that no point
is lost or written twice. The writer is tensorboardX's (the ``tensorboard`` extra), imported when a
run asks for it; :func:`missing` says why it cannot be, for the edges to report before training.
"""
from __future__ import annotations

import importlib.util
import math
import os
import time
from collections.abc import Iterable
from pathlib import Path

from dltspec.diagnostics import DltspecError

#: where ``run { tensorboard = true }`` writes, in the run directory
FOLDER = "tensorboard"
#: a record's field -> its TensorBoard tag (fields a record lacks, or holds no number in, are not written)
SCALARS = {
    "mean_cost": "cost/train",
    "validation_error": "error/validation",
    "best_validation_error": "error/best_validation",
    "test_error": "error/test",
    "learning_rate": "hyper/learning_rate",
    "momentum": "hyper/momentum",
    "patience": "progress/patience",
    "examples_per_s": "progress/examples_per_s",
}
#: the tags the HParams plugin shows for each variant (their last values)
HPARAM_METRICS = ("error/best_validation", "error/test", "error/validation")
INSTALL = "pip install 'dltspec[tensorboard]'"


class TensorBoardMissing(DltspecError):
    """TensorBoard logging was asked for, and tensorboardX is not installed."""

    code = "DLT505"
    notes = (f"install it with: {INSTALL}; or turn TensorBoard logging off",)


def missing() -> str | None:
    """Why TensorBoard logging cannot run here (tensorboardX is not installed), or ``None``."""
    if importlib.util.find_spec("tensorboardX") is None:
        return "TensorBoard logging needs tensorboardX, which is not installed"
    return None


def wanted(spec_data: dict, folder: Path | None = None) -> bool:
    """Whether a run writes TensorBoard events: ``folder`` given (``--tensorboard DIR``), or the spec says so."""
    return folder is not None or bool(spec_data.get("run", {}).get("tensorboard"))


def folder_of(run_path: Path, spec_data: dict, base: Path | None = None) -> Path | None:
    """Where a run's event files go: ``base/<run directory name>`` (``--tensorboard DIR``), else
    ``<run>/tensorboard`` when the spec's ``run.tensorboard`` is true, else ``None``."""
    if base is not None:
        return Path(base) / Path(run_path).resolve().name
    return Path(run_path) / FOLDER if wanted(spec_data) else None


def scalar(value) -> float | None:
    """A record's value as a TensorBoard scalar (``"nan"``, ``"inf"``: as ``metrics.jsonl`` spells them),
    or ``None``."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str) and value in ("nan", "inf", "-inf"):
        return float(value)
    return None


def hparam_value(value):
    """A swept value as the HParams plugin takes it: numbers, booleans and strings as they are, anything
    else (a list of layer sizes) as spec text."""
    if isinstance(value, (bool, int, float, str)):
        return value
    from dltspec.lang.spelling import value_text

    return value_text(value)


def event_files(folder: Path) -> list[Path]:
    return sorted(folder.glob("events.out.tfevents.*")) if folder.is_dir() else []


class EventLog:
    """One run's event files in ``folder``: the scalars of each record, and the hyper-parameters.

    Opening it writes ``records`` (those ``metrics.jsonl`` holds already: a resumed run's) into a new
    event file, then removes the event files that were there before, so that the folder holds each
    validation point once. Raises :class:`TensorBoardMissing` without tensorboardX.
    """

    def __init__(self, folder: Path, hparams: dict | None = None, records: Iterable[dict] = ()):
        try:
            from tensorboardX import SummaryWriter
        except ImportError:
            raise TensorBoardMissing(missing() or "TensorBoard logging needs tensorboardX") from None
        folder.mkdir(parents=True, exist_ok=True)
        earlier = event_files(folder)
        self.folder = folder
        self.writer = SummaryWriter(logdir=str(folder), flush_secs=10,
                                    filename_suffix=f".{os.getpid()}.{time.monotonic_ns()}")
        if hparams:
            self.write_hparams(hparams)
        for record in records:
            self.write(record, flush=False)
        self.writer.flush()
        for path in earlier:
            path.unlink(missing_ok=True)

    def write_hparams(self, hparams: dict) -> None:
        from tensorboardX.summary import hparams as hparams_summaries

        values = {key: hparam_value(value) for key, value in hparams.items()}
        for summary in hparams_summaries(values, dict.fromkeys(HPARAM_METRICS, math.nan)):
            self.writer.file_writer.add_summary(summary)

    def write(self, record: dict, flush: bool = True) -> None:
        """The scalars of one ``metrics.jsonl`` record, at its iteration."""
        for field, tag in SCALARS.items():
            value = scalar(record.get(field))
            if value is not None:
                self.writer.add_scalar(tag, value, global_step=record["iteration"])
        if flush:
            self.writer.flush()

    def close(self) -> None:
        self.writer.close()
