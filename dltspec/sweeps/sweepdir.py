"""A sweep's directory (``sweep.json``, ``results.jsonl``, the ranked tables, ``runs/``) and its lock,
and the ranked results tables written into it (see :mod:`dltspec.sweeps.tasks` for the layout)."""
from __future__ import annotations

import csv
import io
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from dltspec.diagnostics import DltspecError
from dltspec.files import write_atomic
from dltspec.lang.spec import Spec
from dltspec.lang.spelling import value_text
from dltspec.sweeps.variants import swept_keys
from dltspec.training.rundir import json_value

if TYPE_CHECKING:
    from dltspec.sweeps.tasks import Planned

SWEEP, RESULTS_LOG, RESULTS_CSV, RESULTS_JSON, RUNS = (
    "sweep.json", "results.jsonl", "results.csv", "results.json", "runs")


class SweepError(DltspecError):
    """A sweep that cannot run: Dask missing, a scheduler out of reach, a sweep directory not writable."""


# -- the sweep directory --------------------------------------------------------------

@dataclass
class SweepDir:
    """A sweep's directory: what it runs, and the results so far (see the module's docstring)."""

    path: Path

    @classmethod
    def create(cls, path: Path) -> SweepDir:
        try:
            (path / RUNS).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise SweepError(f"cannot create sweep directory {path}: {exc.strerror or exc}") from None
        return cls(path)

    def file(self, name: str) -> Path:
        return self.path / name

    def lock(self):
        """An exclusive lock on this sweep directory (a context manager that releases it), so that two
        sweeps never train into the same run directories; :class:`SweepError` if another holds it."""
        import fcntl
        from contextlib import closing

        f = open(self.file(".lock"), "a")
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.close()
            raise SweepError(f"another dltspec sweep is running in {self.path}; wait for it, or choose "
                             "another --out") from None
        return closing(f)

    def write_plan(self, spec: Spec, planned: list[Planned]) -> None:
        sweep = spec.data["sweep"]
        info = {"format": "dltspec.sweep/1", "spec": spec.source.file, "overrides": list(spec.source.overrides),
                "kind": sweep["kind"], "keys": swept_keys(sweep),
                "variants": [{"index": p.variant.index, "key": p.key, "values": p.variant.values,
                              "run": p.task.run_dir} for p in planned]}
        write_atomic(self.file(SWEEP), (json.dumps(json_value(info), indent=2) + "\n").encode(), mode=0o644)

    def read_plan(self) -> dict:
        try:
            return json.loads(self.file(SWEEP).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise SweepError(f"{self.path} is not a sweep directory ({SWEEP}: "
                             f"{getattr(exc, 'strerror', None) or exc})") from None

    def records(self) -> dict[str, dict]:
        """The latest record of each variant key (a torn last line, from a crash mid-write, is skipped)."""
        try:
            lines = self.file(RESULTS_LOG).read_text(encoding="utf-8").split("\n")
        except FileNotFoundError:
            return {}
        latest: dict[str, dict] = {}
        for line in lines:
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict) and "key" in record:
                latest[record["key"]] = record
        return latest

    def append(self, record: dict) -> None:
        """Add one record, durably: appended, flushed and fsync'ed before this returns (after a line
        torn by a crash, on a line of its own)."""
        with open(self.file(RESULTS_LOG), "a+b") as f:
            torn = False
            if f.seek(0, os.SEEK_END) > 0:
                f.seek(-1, os.SEEK_END)
                torn = f.read(1) != b"\n"
            f.write((("\n" if torn else "") + json.dumps(json_value(record)) + "\n").encode("utf-8"))
            f.flush()
            os.fsync(f.fileno())

    def write_tables(self, rows: list[dict], keys: list[str]) -> None:
        write_atomic(self.file(RESULTS_JSON), (json.dumps(json_value(rows), indent=2) + "\n").encode(), mode=0o644)
        write_atomic(self.file(RESULTS_CSV), csv_text(rows, keys).encode(), mode=0o644)


# -- results -------------------------------------------------------------------------

def ranked(planned: list[Planned], records: dict[str, dict]) -> list[dict]:
    """One row per variant of this sweep: the finished ranked by best validation error (never by test
    error), then the diverged, the failed and those not run yet. ``rank`` counts the finished only."""
    order = {"finished": 0, "diverged": 1, "failed": 2, "pending": 3}
    rows = []
    for p in planned:
        record = records.get(p.key, {"status": "pending"})
        rows.append({"variant": p.variant.index, "key": p.key, "values": p.variant.values, **record,
                     "index": p.variant.index})
    rows.sort(key=lambda r: (order.get(r["status"], 4), r.get("best_validation_error") is None,
                             r.get("best_validation_error") or 0.0, r["variant"]))
    for n, row in enumerate(rows, start=1):
        row["rank"] = n if row["status"] == "finished" else None
    return rows


CSV_FIELDS = ("rank", "variant", "status", "best_validation_error", "test_error", "epochs", "iterations",
              "seconds", "run", "reason", "key")


def csv_text(rows: list[dict], keys: list[str]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["rank", "variant", *keys, *CSV_FIELDS[2:]])
    for row in rows:
        values = [json.dumps(row["values"].get(k)) if isinstance(row["values"].get(k), list)
                  else row["values"].get(k) for k in keys]
        writer.writerow([row.get("rank"), row["variant"], *values, *(row.get(f) for f in CSV_FIELDS[2:])])
    return out.getvalue()


def short_names(keys: list[str]) -> list[str]:
    """Column titles: each key's last part (``learning_rate``), the whole key where two would clash, or where
    it would read as one of the table's own columns (``pretrain.epochs`` beside ``epochs``)."""
    last = [k.rsplit(".", 1)[-1] for k in keys]
    own = {"rank", "variant", "epochs", "seconds", "status"}
    return [name if last.count(name) == 1 and name not in own else key for name, key in zip(last, keys)]


def percent(value) -> str:
    return f"{value * 100:.2f}" if isinstance(value, (int, float)) else "-"


def table(rows: list[dict], keys: list[str]) -> str:
    """The ranked results as aligned text."""
    lines = [["rank", "variant", *short_names(keys), "best valid %", "test %", "epochs", "seconds", "status"]]
    for row in rows:
        lines.append([str(row.get("rank") or "-"), str(row["variant"]),
                      *(value_text(row["values"].get(k), bare_names=True) for k in keys),
                      percent(row.get("best_validation_error")), percent(row.get("test_error")),
                      str(row.get("epochs") or "-"),
                      f"{row['seconds']:.1f}" if isinstance(row.get("seconds"), (int, float)) else "-",
                      row["status"]])
    widths = [max(len(line[i]) for line in lines) for i in range(len(lines[0]))]
    return "\n".join("  ".join(cell.ljust(w) if i == len(widths) - 1 else cell.rjust(w)
                               for i, (cell, w) in enumerate(zip(line, widths))).rstrip() for line in lines)


