"""The Python API: the whole pipeline for scripts and notebooks. The CLI is a thin layer over it.

>>> import dltspec
>>> spec = dltspec.read("specs/digits.dlt", overrides=["stopping.n_epochs=2"])  # doctest: +SKIP
>>> result = dltspec.train(spec)                                                 # doctest: +SKIP
>>> result.best_validation_error, result.test_error                              # doctest: +SKIP
>>> dltspec.save(result, "digits.best.pkl")                                      # doctest: +SKIP
>>> dltspec.evaluate(spec, "digits.best.pkl")                                    # doctest: +SKIP

Every function that finds problems in a spec raises :class:`SpecError`, whose
``diagnostics`` are the located problems as data; :func:`diagnose` returns
them instead of raising.
"""
from __future__ import annotations

from pathlib import Path

from dltspec.backends.options import default_backend
from dltspec.diagnostics import SpecError  # noqa: F401 - part of the facade
from dltspec.lang.spec import Spec
from dltspec.pipeline import (  # noqa: F401
    Observer,
    Observers,
    Result,
    Training,
    build_program,
    check_output,
    compile_training,
    data_diagnostic,
    diagnose,
    evaluate,
    layers,
    load_data,
    metadata,
    output_path,
    output_problem,
    read,
    read_text,
    result_metadata,
    save,
    train,
    training_metadata,
    validated,
    versions,
)


def sweep(spec: Spec, *, out: Path | str | None = None, backend: str | None = None, floatX: str = "float32",
          device: str | None = None, budget: int | None = None, scheduler: str | None = None,
          workers: int | None = None, connect_timeout: float = 30, observer=None, ready: list | None = None):
    """Train every variant of ``spec``'s sweep block on a Dask cluster and rank them by validation error.

    Variants that already ended in ``out`` (default ``sweeps/<name>``) are skipped, so a sweep run
    again goes on where it stopped. ``scheduler``: an existing cluster's address, else a local
    cluster of ``workers``. ``observer``: a :class:`dltspec.sweeps.orchestrate.SweepObserver` told of
    progress. Returns a :class:`dltspec.sweeps.orchestrate.SweepResult`; raises :class:`SpecError` if a
    variant cannot train on its data, :class:`dltspec.sweeps.tasks.SweepError` if the sweep cannot run.
    """
    from dltspec.sweeps.orchestrate import run_sweep

    return run_sweep(spec, out=Path(out) if out is not None else None, backend=backend or default_backend(),
                     floatX=floatX, device=device, budget=budget, scheduler=scheduler, workers=workers,
                     connect_timeout=connect_timeout, observer=observer, ready=ready)
