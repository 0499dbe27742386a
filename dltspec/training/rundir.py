"""A run directory: everything one ``dltspec run`` did, readable without dltspec's help.

::

    runs/<spec name>-<YYYYmmdd-HHMMSS>/
        spec.dlt        the spec as run: --set overrides applied, defaults written out, data path resolved
        run.json        how it was run: command-line spec file and overrides, spec hash, backend, versions
        metrics.jsonl   one JSON record per validation point (appended as the run goes)
        best.pkl        the best parameters so far (dltspec.params/1, as --save writes)
        checkpoint.pkl  the full training state at the last checkpoint (for --resume)
        snapshots/      intermediate parameters, iter-<iteration>.pkl, the newest kept
        summary.json    status (running, finished, interrupted, diverged) and the final figures

Every file but ``metrics.jsonl`` is replaced atomically (:func:`dltspec.files.write_atomic`);
``metrics.jsonl`` is appended a line at a time, and a torn last line (a crash mid-write) is
ignored when read. A checkpoint records how many metric records it covers, so a resumed run
drops the records written after it and writes them again, as the uninterrupted run did.
"""
from __future__ import annotations

import json
import math
import os
import pickle
import time
from dataclasses import dataclass
from pathlib import Path

from dltspec.data import safe_pickle
from dltspec.diagnostics import DltspecError
from dltspec.files import write_atomic

SPEC, RUN, METRICS, BEST, CHECKPOINT, SUMMARY, SNAPSHOTS = (
    "spec.dlt", "run.json", "metrics.jsonl", "best.pkl", "checkpoint.pkl", "summary.json", "snapshots")
#: a pre-training run's records (one line per pre-training epoch) and its pre-trained network with the phases' extras
PRETRAIN, PRETRAINED = "pretrain.jsonl", "pretrained.pkl"
CHECKPOINT_FORMAT = "dltspec.checkpoint/2"  # /2: the optimizer's state (``optimizer_state``)
#: earlier formats still read, and what each lacks: a /1 checkpoint was written by plain SGD, which keeps no state
EARLIER_FORMATS = {"dltspec.checkpoint/1": {"optimizer_state": {}}}
DEFAULT_ROOT = Path("runs")


class RunError(DltspecError):
    """A run directory that cannot be created, read or resumed."""


def metrics_line(record: dict) -> str:
    """One record of ``metrics.jsonl``: a line of JSON, non-finite numbers spelled out."""
    return json.dumps(json_value(record)) + "\n"


def json_value(value):
    """``value`` with non-finite floats as strings ("nan", "inf"): JSON has no such numbers."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: json_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_value(v) for v in value]
    return value


#: what every record of metrics.jsonl holds, and of which type
METRIC_FIELDS = {"epoch": int, "iteration": int, "mean_cost": (int, float, str), "validation_error": (int, float),
                 "best_validation_error": (int, float), "is_best": bool, "test_error": (int, float, type(None))}


def metric_problem(record) -> str | None:
    """What a ``metrics.jsonl`` record lacks, or ``None``."""
    if not isinstance(record, dict):
        return f"a {type(record).__name__}, not a record"
    for key, kind in METRIC_FIELDS.items():
        if not isinstance(record.get(key), kind) or (kind is int and isinstance(record.get(key), bool)):
            return f"its {key} is {'missing' if key not in record else repr(record[key])}"
    return None


def json_bytes(obj) -> bytes:
    return (json.dumps(json_value(obj), indent=2) + "\n").encode("utf-8")


def new_path(root: Path, name: str, now: float | None = None) -> Path:
    """A fresh directory ``root/<name>-<timestamp>`` (``-2``, ``-3`` ... when taken), created."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(now))
    root.mkdir(parents=True, exist_ok=True)
    for n in range(1, 1000):
        path = root / (f"{name}-{stamp}" if n == 1 else f"{name}-{stamp}-{n}")
        try:
            path.mkdir()
            return path
        except FileExistsError:
            continue
    raise RunError(f"cannot find a free run directory name under {root}")


def checkpoint_problem(obj: dict) -> str | None:
    """What is missing or of the wrong type in a checkpoint of the right format, or ``None``."""
    from dataclasses import fields

    import numpy as np

    from dltspec.training.loop import LoopState, Patience

    kinds = {"spec_sha256": str, "instance": dict, "backend": str, "floatX": str, "device": str, "patience": dict,
             "loop": dict, "params": dict, "best_params": (dict, type(None)), "optimizer_state": dict}
    for key, kind in kinds.items():
        if not isinstance(obj.get(key), kind):
            return f"its {key} is {type(obj.get(key)).__name__ if key in obj else 'missing'}"
    for key, record in (("loop", LoopState), ("patience", Patience)):
        known = {f.name for f in fields(record)}
        unknown = sorted(set(obj[key]) - known)
        if unknown:
            return f"its {key} has unknown fields {', '.join(map(str, unknown))}"
    for key in ("n_train_batches", "best_iter"):
        if not isinstance(obj["patience"].get(key), int):
            return f"its patience.{key} is not an integer"
    for key in ("patience", "best_validation_loss"):
        if not isinstance(obj["patience"].get(key), (int, float)):
            return f"its patience.{key} is not a number"
    for key in ("params", "best_params", "optimizer_state"):
        bad = [n for n, v in (obj[key] or {}).items() if not isinstance(v, np.ndarray)]
        if bad:
            return f"its {key} holds {bad[0]!r}, which is not an array"
    return pretrain_problem(obj)


def pretrain_problem(obj: dict) -> str | None:
    """What is wrong with a checkpoint's pre-training state (absent in a run without one), or ``None``."""
    from dataclasses import fields

    import numpy as np

    from dltspec.training.pretrain import PretrainState

    state, extras, phase = obj.get("pretrain"), obj.get("pretrain_extras"), obj.get("pretrain_phase")
    if state is None:
        return None
    if not isinstance(state, dict) or set(state) != {f.name for f in fields(PretrainState)}:
        return "its pretrain state is not one dltspec writes"
    if not all(isinstance(state[k], int) for k in ("phase", "step", "records")):
        return "its pretrain state's counts are not integers"
    arrays = [extras] + ([phase.get("params"), phase.get("state")] if isinstance(phase, dict) else [])
    if phase is not None and not isinstance(phase, dict):
        return "its pretrain_phase is not a mapping"
    for group in arrays:
        if not isinstance(group, dict) or any(not isinstance(v, np.ndarray) for v in group.values()):
            return "its pre-training values are not arrays by name"
    return None


class RunInUse(RunError):
    """Another process holds the run directory's lock."""


#: run directory -> the descriptor that holds its lock in this process
LOCKS: dict[str, int] = {}


def lock(path: Path, wait: float = 0.0) -> None:
    """Take the run directory's lock for this process (an advisory ``flock`` on the directory itself, which
    the system releases when the process ends, however it ends); :class:`RunInUse` if another process
    still holds it after ``wait`` seconds. Where ``flock`` is missing (Windows), nothing is locked."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        return
    key = str(Path(path).resolve())
    if key in LOCKS:
        return
    import time

    fd, deadline = os.open(key, os.O_RDONLY), time.monotonic() + wait
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            if time.monotonic() < deadline:
                time.sleep(0.1)
                continue
            os.close(fd)
            raise RunInUse(f"{path} is in use: another dltspec process is training it; wait for it to end "
                       "(or stop it) before resuming") from None
    LOCKS[key] = fd


def unlock(path: Path) -> None:
    fd = LOCKS.pop(str(Path(path).resolve()), None)
    if fd is not None:
        os.close(fd)


@dataclass
class RunDir:
    """The files of one run; see the module's docstring for the layout."""

    path: Path

    @classmethod
    def create(cls, name: str, out: Path | None = None, root: Path = DEFAULT_ROOT) -> RunDir:
        """A new run directory: ``out`` exactly (it must not exist, or be empty), else a fresh one under ``root``."""
        try:
            if out is None:
                return cls(new_path(root, name))
            out.mkdir(parents=True, exist_ok=True)
            if any(out.iterdir()):
                raise RunError(f"{out} is not empty; choose a new --out directory "
                               f"(or continue that run with --resume {out})")
            return cls(out)
        except OSError as exc:
            raise RunError(f"cannot create run directory {out or root}: {exc.strerror or exc}") from None

    @classmethod
    def open(cls, path: Path) -> RunDir:
        """An existing run directory; :class:`RunError` if ``path`` is not one."""
        if not (path / RUN).is_file():
            raise RunError(f"{path} is not a run directory (it has no {RUN})")
        return cls(path)

    def file(self, name: str) -> Path:
        return self.path / name

    # -- what was run ------------------------------------------------------------

    def write_json(self, name: str, obj: dict) -> None:
        write_atomic(self.file(name), json_bytes(obj), mode=0o644)

    def read_json(self, name: str) -> dict:
        try:
            return json.loads(self.file(name).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise RunError(f"cannot read {self.file(name)}: {getattr(exc, 'strerror', None) or exc}") from None

    def summary(self) -> dict:
        """``summary.json``, or ``{}`` where there is none yet (a run killed before writing it) or it is damaged."""
        try:
            summary = self.read_json(SUMMARY)
        except RunError:
            return {}
        return summary if isinstance(summary, dict) else {}

    def write_spec(self, text: str) -> None:
        write_atomic(self.file(SPEC), text.encode("utf-8"), mode=0o644)

    # -- metrics -------------------------------------------------------------------

    def metrics_log(self):
        """``metrics.jsonl`` open for appending (a text file; write a :func:`metrics_line` and flush it per
        record; durable once :meth:`sync_metrics` has run)."""
        return open(self.file(METRICS), "a", encoding="utf-8")

    def sync_metrics(self) -> None:
        """Make the records appended so far durable (before a checkpoint that counts them)."""
        try:
            fd = os.open(self.file(METRICS), os.O_RDONLY)
        except FileNotFoundError:
            return
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def metrics(self) -> list[dict]:
        """Every complete record (a torn last line, from a crash mid-write, is left out); :class:`RunError`
        naming the line when a complete one is not a record of a validation point (a damaged file)."""
        try:
            lines = self.file(METRICS).read_text(encoding="utf-8", errors="replace").split("\n")
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise RunError(f"cannot read {self.file(METRICS)}: {exc.strerror or exc}") from None
        records = []
        for number, line in enumerate(lines, start=1):
            try:
                record = json.loads(line)
            except ValueError:
                if line.strip() and number < len(lines) - 1:  # not the last line: damaged, not torn
                    raise RunError(f"{self.file(METRICS)}:{number}: not a line of JSON; the file is damaged") from None
                continue
            problem = metric_problem(record)
            if problem:
                raise RunError(f"{self.file(METRICS)}:{number}: {problem}; the file is damaged")
            records.append(record)
        return records

    def never_trained(self, name: str, when: str) -> None:
        """Say in a new run's summary that it was interrupted before training began (nothing to resume)."""
        try:
            self.write_json(SUMMARY, {"status": "interrupted", "name": name, "updated": when,
                                      "problems": ["stopped before training began: nothing to resume"]})
        except OSError:
            pass

    def pretrain_records(self) -> list[dict]:
        """The pre-training epochs recorded (a torn or damaged line ends them: they are figures, not state)."""
        try:
            lines = self.file(PRETRAIN).read_text(encoding="utf-8", errors="replace").splitlines()
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise RunError(f"cannot read {self.file(PRETRAIN)}: {exc.strerror or exc}") from None
        records = []
        for line in lines:
            try:
                record = json.loads(line)
            except ValueError:
                break
            if not isinstance(record, dict):
                break
            records.append(record)
        return records

    def append_pretrain(self, record: dict) -> None:
        """One pre-training epoch's record, appended and flushed (made durable with the next checkpoint)."""
        with open(self.file(PRETRAIN), "a", encoding="utf-8") as f:
            f.write(json.dumps(json_value(record)) + "\n")

    def keep_pretrain(self, n: int) -> None:
        """Keep only the first ``n`` pre-training records (those a checkpoint covers)."""
        if self.file(PRETRAIN).exists():
            records = self.pretrain_records()[:n]
            write_atomic(self.file(PRETRAIN), "".join(json.dumps(r) + "\n" for r in records).encode("utf-8"),
                         mode=0o644)

    def keep_metrics(self, n: int) -> None:
        """Keep only the first ``n`` records (those a checkpoint covers)."""
        records = self.metrics()[:n]
        write_atomic(self.file(METRICS), "".join(json.dumps(r) + "\n" for r in records).encode("utf-8"), mode=0o644)

    # -- parameters and checkpoints ------------------------------------------------

    def write_checkpoint(self, checkpoint: dict) -> None:
        data = pickle.dumps({"format": CHECKPOINT_FORMAT, **checkpoint}, protocol=pickle.HIGHEST_PROTOCOL)
        write_atomic(self.file(CHECKPOINT), data)

    def read_checkpoint(self) -> dict:
        """The last checkpoint, read with the restricted unpickler; :class:`RunError` if there is none."""
        path = self.file(CHECKPOINT)
        if not path.exists():
            raise RunError(f"{self.path} has no checkpoint yet (the run stopped before its first checkpoint was "
                           "written): nothing to resume; start it again")
        try:
            obj = safe_pickle.load(path)
        except Exception as exc:  # noqa: BLE001 - any unpickling failure of a corrupt file
            raise RunError(f"cannot read {path}: {exc}") from None
        if isinstance(obj, dict) and obj.get("format") in EARLIER_FORMATS:
            obj = {**EARLIER_FORMATS[obj["format"]], **obj, "format": CHECKPOINT_FORMAT}
        if not (isinstance(obj, dict) and obj.get("format") == CHECKPOINT_FORMAT):
            raise RunError(f"{path} is not a dltspec checkpoint (expected format {CHECKPOINT_FORMAT}, or an earlier "
                           f"one: {', '.join(EARLIER_FORMATS)})")
        problem = checkpoint_problem(obj)
        if problem:
            raise RunError(f"{path} is damaged: {problem}; it cannot be resumed (start the run again)")
        return obj

    def snapshot_path(self, iteration: int) -> Path:
        return self.file(SNAPSHOTS) / f"iter-{iteration:09d}.pkl"

    def snapshots(self) -> list[Path]:
        """Snapshot files, oldest first."""
        return sorted(self.file(SNAPSHOTS).glob("iter-*.pkl"))

    def prune_snapshots(self, keep: int) -> None:
        for old in self.snapshots()[:-keep]:
            old.unlink(missing_ok=True)

    def params_file(self, snapshot: int | None = None) -> Path:
        """``best.pkl``, or the snapshot of iteration ``snapshot`` (1-based, as metrics report it)."""
        if snapshot is None:
            return self.file(BEST)
        path = self.snapshot_path(snapshot - 1)
        if not path.exists():
            kept = ", ".join(str(int(p.stem[5:]) + 1) for p in self.snapshots()) or "none"
            raise RunError(f"{self.path} has no snapshot at iteration {snapshot} (kept: {kept})")
        return path


def is_run(path: Path) -> bool:
    return (path / RUN).is_file()


def runs_under(root: Path) -> list[RunDir]:
    """The run directories in ``root`` (or ``root`` itself), oldest first."""
    if is_run(root):
        return [RunDir(root)]
    found = [RunDir(p) for p in root.iterdir() if is_run(p)] if root.is_dir() else []
    return sorted(found, key=lambda r: (r.path.stat().st_mtime, r.path.name))



#: the fields of a record of :func:`run_records`, in the table's order
RUN_COLUMNS = ("run", "path", "status", "best_validation_error", "test_error", "epochs", "iterations", "seconds",
               "stopped_by", "backend")


def run_records(root: Path) -> list[dict]:
    """The runs table (``dltspec runs``, :func:`dltspec.runs`): one record of :data:`RUN_COLUMNS` per run
    directory in ``root`` (or ``root`` itself), oldest first, from its ``summary.json`` (status ``unknown``
    where a run was killed before writing one; a figure it lacks is ``None``). :class:`RunError` if
    ``root`` does not exist."""
    if not root.exists():
        raise RunError(f"{root}: no such directory")
    records = []
    for run in runs_under(root):
        summary = run.summary() or {"status": "unknown"}
        records.append({"run": run.path.name if run.path != root else str(root), "path": str(run.path),
                        **{key: summary.get(key) for key in RUN_COLUMNS[2:]},
                        "status": str(summary.get("status", "?"))})
    return records
