"""What a run records of where it came from (the spec as it ran, the command, the host, the versions),
and how a run about to be resumed differs from the one its checkpoint was written by.
"""
from __future__ import annotations

import copy
import hashlib
import os
import socket
import sys
import time
from pathlib import Path

from dltspec.diagnostics import Diagnostic, Span, error
from dltspec.lang.spec import Spec
from dltspec.lang.spelling import instance_text, repr_text
from dltspec.training import session
from dltspec.training.rundir import RunDir
from dltspec.training.session import Training


def now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


def spec_as_run(spec: Spec, source: Path | None = None) -> str:
    """The spec as it runs: overrides applied, defaults written out, the data path made the absolute
    path of ``source``, the data actually read (so that ``dltspec run RUN/spec.dlt`` trains the same
    model from anywhere)."""
    instance = copy.deepcopy(spec.data)
    dataset = instance["dataset"]
    notes = ""
    if "path" in dataset and source is not None:
        if dataset["kind"] == "mnist" and source.is_dir():  # the pickle was missing: its fetched IDX files
            notes = f"# read from the IDX files in {source.resolve()} (the pickle was not found)\n"
        else:
            dataset["path"] = str(source.resolve())
    overrides = "".join(f" --set {o}" for o in spec.source.overrides)
    return f"# as run from {spec.source.file}{overrides}\n{notes}" + instance_text(instance)


def run_info(spec: Spec, as_run: str, backend: str, floatX: str, device: str | None) -> dict:
    return {
        "name": spec.name,
        "spec_file": spec.source.file if spec.source.file.startswith("<") else str(Path(spec.source.file).resolve()),
        "overrides": list(spec.source.overrides),
        "spec_sha256": spec.source.sha256,
        "spec_as_run_sha256": hashlib.sha256(as_run.encode("utf-8")).hexdigest(),
        "backend": backend, "floatX": floatX, "device": device,
        "command": ["dltspec", *sys.argv[1:]],
        "host": socket.gethostname(), "pid": os.getpid(),
        "started": now_iso(),
        "versions": session.versions(backend),
    }


def flat(obj, prefix: tuple = ()) -> dict[tuple, object]:
    """``{path: value}`` of every leaf of a spec instance (lists of blocks indexed, lists of values kept whole)."""
    if isinstance(obj, dict):
        return {k: v for key, value in obj.items() for k, v in flat(value, prefix + (key,)).items()}
    if isinstance(obj, list) and obj and all(isinstance(v, dict) for v in obj):
        return {k: v for i, value in enumerate(obj) for k, v in flat(value, prefix + (i,)).items()}
    return {prefix: obj}


def dotted(path: tuple) -> str:
    return ".".join(str(p) for p in path)


def resume_differences(checkpoint: dict, training: Training, run: RunDir, where: Span) -> list[Diagnostic]:
    """One DLT504 error per way in which this spec or run differs from the run being resumed."""
    then, now = flat(checkpoint["instance"]), flat(training.spec.data)
    out = []
    for path in sorted(set(then) | set(now), key=dotted):
        if then.get(path, "<absent>") != now.get(path, "<absent>"):
            out.append(error("DLT504", f"{dotted(path)} is {repr_text(now.get(path))} here but "
                             f"{repr_text(then.get(path))} in the run being resumed ({run.path})",
                             training.spec.positions.value(path), "resume with --force to go on with this spec anyway"))
    now_run = {"backend": training.backend, "floatX": training.floatX, "device": training.placement}
    for key, value in now_run.items():
        if checkpoint[key] != value:
            out.append(error("DLT504", f"the run was trained with {key} {checkpoint[key]}, this one uses "
                             f"{value}: results would not be identical", where,
                             f"pass the run's --{key.lower()} {checkpoint[key]}, or --force"))
    return out
