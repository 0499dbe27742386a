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
          workers: int | None = None, connect_timeout: float = 30, observer=None, ready: list | None = None,
          progress: bool | None = None, stack: bool = True):
    """Train every variant of ``spec``'s sweep block on a Dask cluster and rank them by validation error.

    Variants that already ended in ``out`` (default ``sweeps/<name>``) are skipped, so a sweep run
    again goes on where it stopped. ``scheduler``: an existing cluster's address, else a local
    cluster of ``workers``. ``observer``: a :class:`dltspec.sweeps.orchestrate.SweepObserver` told of
    progress. ``progress``: show a bar of the variants ended (tqdm's auto mode: a widget in Jupyter);
    ``None`` (the default): in Jupyter only. ``stack``: the variants that compile to one graph train together
    as one program, each with its own loop and run directory (``False``: each variant alone).
    Returns a :class:`dltspec.sweeps.orchestrate.SweepResult`;
    raises :class:`SpecError` if a variant cannot train on its data (or asks for TensorBoard events
    without tensorboardX), :class:`dltspec.sweeps.tasks.SweepError` if the sweep cannot run.
    """
    from dltspec.sweeps.orchestrate import SweepBar, SweepObservers, run_sweep
    from dltspec.training.progress import in_notebook

    bar = SweepBar() if progress or (progress is None and in_notebook()) else None
    try:
        return run_sweep(spec, out=Path(out) if out is not None else None, backend=backend or default_backend(),
                         floatX=floatX, device=device, budget=budget, scheduler=scheduler, workers=workers,
                         connect_timeout=connect_timeout, observer=SweepObservers(observer, bar), ready=ready,
                         stack=stack)
    finally:
        if bar is not None:
            bar.close()


def runs(folder: Path | str = "runs", *, as_frame: bool = False):
    """The runs table of ``dltspec runs``: one record per run directory in ``folder`` (or ``folder`` itself,
    a run directory), oldest first.

    Each record is a dict: ``run`` (the directory's name), ``path``, ``status``, ``best_validation_error``,
    ``test_error`` (fractions, ``None`` before the first validation), ``epochs``, ``iterations``,
    ``seconds``, ``stopped_by``, ``backend``. ``as_frame=True``: a pandas ``DataFrame`` of them instead
    (:class:`ImportError` saying how to install pandas where it is not). Raises
    :class:`dltspec.training.rundir.RunError` if ``folder`` does not exist.
    """
    from dltspec.training.rundir import RUN_COLUMNS, run_records

    records = run_records(Path(folder))
    if not as_frame:
        return records
    try:
        import pandas
    except ImportError:
        raise ImportError("dltspec.runs(..., as_frame=True) needs pandas, which is not installed: "
                          "pip install 'dltspec[notebook]' (or pandas); without as_frame it returns a list "
                          "of dicts") from None
    return pandas.DataFrame.from_records(records, columns=list(RUN_COLUMNS))
