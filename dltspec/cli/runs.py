"""``dltspec plot``, ``filters``, ``fetch`` and ``runs``: looking at run directories, and fetching data."""
from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path

from dltspec import api
from dltspec.cli.common import EXIT_ERRORS, EXIT_OK, EXIT_USAGE, usage


def run_dirs(names: Sequence[str], command: str):
    from dltspec.training.rundir import RunDir, RunError

    try:
        return [RunDir.open(Path(name)) for name in names]
    except RunError as exc:
        return usage(command, str(exc))


def cmd_plot(args) -> int:
    from dltspec.pictures import PictureError, curves_png, pretrain_png
    from dltspec.sweeps.tasks import SWEEP
    from dltspec.training.rundir import PRETRAIN, RunError

    if (Path(args.run) / SWEEP).is_file():
        return plot_sweep(args)
    runs = run_dirs([args.run, *args.compare], "plot")
    if runs is None:
        return EXIT_USAGE
    out = Path(args.output) if args.output else runs[0].file("curves.png" if not args.compare else "compare.png")
    wrote = []
    try:
        if not args.compare and runs[0].file(PRETRAIN).exists():  # a pre-training run: its own picture too
            pretrain_png(runs[0], runs[0].file("pretrain.png"))
            wrote.append(runs[0].file("pretrain.png"))
            if not runs[0].metrics():  # it only pre-trained, or has not fine-tuned yet
                print(f"wrote {wrote[0]} (no fine-tuning metrics yet: no learning curves)")
                return EXIT_OK
        curves_png(runs, out)
        wrote.append(out)
    except (PictureError, OSError) as exc:
        print(f"dltspec plot: {getattr(exc, 'strerror', None) or exc}", file=sys.stderr)
        return EXIT_ERRORS
    except RunError as exc:
        print(f"dltspec plot: {exc.message}", file=sys.stderr)
        return EXIT_ERRORS
    print(f"wrote {', '.join(map(str, wrote))}")
    return EXIT_OK


def plot_sweep(args) -> int:
    """``dltspec plot SWEEP``: best validation error against each swept value."""
    from dltspec.pictures import PictureError, sweep_png
    from dltspec.sweeps.tasks import RESULTS_JSON, SweepDir, SweepError

    if args.compare:
        return usage("plot", "--compare draws runs on the same axes; a sweep is drawn on its own") or EXIT_USAGE
    sweep_dir = SweepDir(Path(args.run))
    out = Path(args.output) if args.output else sweep_dir.file("sweep.png")
    try:
        keys = sweep_dir.read_plan()["keys"]
        rows = json.loads(sweep_dir.file(RESULTS_JSON).read_text(encoding="utf-8"))
        sweep_png(rows, keys, out)
    except FileNotFoundError:
        print(f"dltspec plot: {sweep_dir.path} has no results yet", file=sys.stderr)
        return EXIT_ERRORS
    except (SweepError, PictureError, OSError, ValueError, KeyError, TypeError) as exc:
        print(f"dltspec plot: {getattr(exc, 'strerror', None) or exc}", file=sys.stderr)
        return EXIT_ERRORS
    print(f"wrote {out}")
    return EXIT_OK


def cmd_filters(args) -> int:
    from dltspec.model import shapes
    from dltspec.pictures import PictureError, filters_png
    from dltspec.predict import InputError, image_shape_of, n_in_of
    from dltspec.training import params as param_files
    from dltspec.training.rundir import RunError

    runs = run_dirs([args.run], "filters")
    if runs is None:
        return EXIT_USAGE
    run = runs[0]
    try:
        path = run.params_file(args.snapshot)
        values, _meta = param_files.load(path)
        spec = api.read(run.file("spec.dlt"))
        shape = image_shape_of(spec, n_in_of(spec, values))
        name = "filters.png" if args.snapshot is None else f"filters-iter-{args.snapshot}.png"
        out = Path(args.output) if args.output else run.file(name)
        first = shapes.network(spec.data).params()[0].name  # the first layer's weights, as the layer names them
        layer, n = filters_png(values, shape, out, name=first)
    except (RunError, param_files.ParamsError, PictureError, InputError, OSError) as exc:
        print(f"dltspec filters: {getattr(exc, 'message', None) or getattr(exc, 'strerror', None) or exc}",
              file=sys.stderr)
        return EXIT_ERRORS
    print(f"wrote {out}: {n} filters of {layer} from {path.name}")
    return EXIT_OK


def cmd_sample(args) -> int:
    """Gibbs samples of a run's first RBM, from test examples, as the RBM tutorial draws them."""
    import numpy as np

    from dltspec.diagnostics import SpecError
    from dltspec.model import shapes
    from dltspec.model.pretrain import gibbs_chains
    from dltspec.pictures import PictureError, samples_png
    from dltspec.predict import InputError, image_shape_of, n_in_of
    from dltspec.training import params as param_files
    from dltspec.training.rundir import PRETRAINED, RunError

    if 0 in (args.chains, args.samples, args.steps):
        return usage("sample", "--chains, --samples and --steps must be at least 1") or EXIT_USAGE
    runs = run_dirs([args.run], "sample")
    if runs is None:
        return EXIT_USAGE
    run = runs[0]
    try:
        spec = api.read(run.file("spec.dlt"))
        if spec.data.get("pretrain", {}).get("kind") != "rbm":
            raise PictureError(f"{run.path} did not pre-train an RBM: sampling draws from one (pretrain rbm)")
        values, _meta = param_files.load(run.file(PRETRAINED))
        first = shapes.network(spec.data).layers[0].name
        if f"{first}.vbias" not in values:
            raise PictureError(f"{run.file(PRETRAINED)} holds no {first}.vbias: the RBM's pre-training did not end")
        x = api.load_data(spec).arrays["test"][0]
        if args.chains > len(x):
            raise PictureError(f"--chains {args.chains}: the test split has {len(x)} examples to start from")
        rows = np.random.RandomState(args.seed).randint(len(x) - args.chains + 1)
        samples = gibbs_chains(values[f"{first}.W"], values[f"{first}.b"], values[f"{first}.vbias"],
                               x[rows:rows + args.chains], args.samples, args.steps, args.seed)
        out = Path(args.output) if args.output else run.file("samples.png")
        samples_png(samples, image_shape_of(spec, n_in_of(spec, values)), out)
    except SpecError as exc:
        print(f"dltspec sample: {exc.diagnostics[0].message}", file=sys.stderr)
        return EXIT_ERRORS
    except (RunError, param_files.ParamsError, PictureError, InputError, OSError) as exc:
        print(f"dltspec sample: {getattr(exc, 'message', None) or getattr(exc, 'strerror', None) or exc}",
              file=sys.stderr)
        return EXIT_ERRORS
    print(f"wrote {out}: {args.samples} samples of {args.chains} chains, {args.steps} Gibbs steps apart, "
          f"from {first} of {run.file(PRETRAINED).name}")
    return EXIT_OK


def cmd_fetch(args) -> int:
    from dltspec.data.fetch import FetchError, fetch_mnist
    from dltspec.data.loaders import DataError, mnist_from_idx

    try:
        folder = fetch_mnist(Path(args.to) if args.to else None, args.mirror, args.timeout, args.retries)
        splits = mnist_from_idx(folder)
    except (FetchError, DataError) as exc:
        print(f"dltspec fetch: {getattr(exc, 'message', None) or exc}", file=sys.stderr)
        return EXIT_ERRORS
    sizes = "/".join(f"{splits.size(s):,}" for s in ("train", "valid", "test"))
    print(f"MNIST in {folder} ({sizes} examples, the tutorial's split); use it with "
          f'`dataset idx {{ path = "{folder}" }}`' + ("" if args.to else ", and `dataset mnist` finds it"))
    return EXIT_OK


def cmd_runs(args) -> int:
    from dltspec.sweeps.sweepdir import percent
    from dltspec.training.rundir import RunError, run_records

    root = Path(args.dir)
    try:
        records = run_records(root)
    except RunError as exc:
        return usage("runs", exc.message) or EXIT_USAGE
    shown = lambda value: "-" if value is None else str(value)  # noqa: E731
    rows = [["run", "status", "best valid %", "test %", "epochs", "seconds", "backend"]]
    for r in records:
        rows.append([r["run"], r["status"], percent(r["best_validation_error"]), percent(r["test_error"]),
                     shown(r["epochs"]), shown(r["seconds"]), shown(r["backend"])])
    if len(rows) == 1:
        print(f"no runs in {root}")
        return EXIT_OK
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(w) if i in (0, 1, 6) else cell.rjust(w)
                        for i, (cell, w) in enumerate(zip(row, widths))).rstrip())
    return EXIT_OK
