"""The ``dltspec`` command: a thin layer over :mod:`dltspec.api`.

Exit codes: 0 success; 1 the spec, its data or a parameter file has errors
(nothing was trained or written); 2 bad usage, or a --device / --backend that cannot run
here (no GPU, no jax), or a run directory that cannot be created or resumed; 3 training
diverged (the best parameters so far are kept); 130 interrupted by Ctrl-C, 143 by SIGTERM
(``run`` writes a checkpoint first and says how to resume); 141 the output pipe was closed by its reader.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import shlex
import signal
import sys
import time
from pathlib import Path
from typing import Sequence

from dltspec import __version__, api
from dltspec.diagnostics import Diagnostic, Span, SpecError, error, has_errors
from dltspec.render import text as render_text
from dltspec.lang.spec import Source

EXIT_OK, EXIT_ERRORS, EXIT_USAGE, EXIT_DIVERGED, EXIT_INTERRUPTED, EXIT_BROKEN_PIPE = 0, 1, 2, 3, 130, 141
STARTED = time.perf_counter()  # when the command's module was imported: its start, near enough


def source_lines(path: str, text: str, overrides: Sequence[str]):
    source = Source(path, text, Path("."), tuple(overrides))
    return source.lines


def report(diagnostics: Sequence[Diagnostic], lines) -> None:
    if diagnostics:
        print(render_text(diagnostics, lines), file=sys.stderr)


def spec_text(path: str) -> str:
    if path == "-":
        text = sys.stdin.read()
        return text[1:] if text.startswith("\ufeff") else text
    return api.read_text(path)


def diagnose_path(path: str, overrides: Sequence[str], max_variants: int | None = None):
    """Read and check the spec at ``path`` (``-``: standard input); ``max_variants``: as
    :func:`dltspec.api.diagnose` (0: leave a sweep's variants to the caller).

    Returns ``(spec, diagnostics, lines, text)``: ``spec`` is ``None`` when it has errors,
    ``lines`` looks up source lines for rendering. Raises :class:`SpecError` if unreadable.
    """
    text = spec_text(path)
    name = path if path != "-" else "<stdin>"
    base = Path(path).resolve().parent if path != "-" else Path.cwd()
    spec, diagnostics = api.diagnose(text, name, base, overrides, max_variants)
    return spec, diagnostics, source_lines(name, text, overrides), text


def read_spec(args):
    """Read and check the spec named on the command line; report its diagnostics.

    Returns ``(spec, lines)``; ``spec`` is ``None`` when it has errors (already reported).
    """
    spec, diagnostics, lines, _text = diagnose_path(args.spec, args.set)
    report(diagnostics, lines)
    return spec, lines


def resolve_placement(args) -> bool:
    """Set ``args.backend`` and ``args.device`` from ``--backend`` and ``--device``; on failure
    print one line and return ``False``."""
    from dltspec.backends.jax_backend import DeviceError, placement

    try:
        args.backend, args.device = placement(args.backend, args.device)
    except DeviceError as exc:
        print(f"dltspec {args.command}: {exc}", file=sys.stderr)
        return False
    return True


class StopRequest:
    """SIGINT and SIGTERM ask the loop to stop after the minibatches in flight (the loop checkpoints
    there); a second SIGINT stops at once."""

    def __init__(self, at_once: bool = False):
        self.signal: int | None = None
        self.announced = False
        self.previous: dict = {}
        self.at_once = at_once  # raise KeyboardInterrupt at the first signal (nothing polls it)

    def __call__(self) -> bool:
        """Asked by the loop between chunks; says so the first time it stops (not from the handler:
        writing to a stream there could interrupt another write to it)."""
        if self.signal is not None and not self.announced:
            self.announced = True
            print(f"dltspec run: {signal.Signals(self.signal).name}: stopping after this minibatch and writing a "
                  "checkpoint (Ctrl-C again to stop at once)", file=sys.stderr, flush=True)
        return self.signal is not None

    def handle(self, signum, frame) -> None:
        if self.at_once or (self.signal is not None and signum == signal.SIGINT):
            self.signal = self.signal or signum
            raise KeyboardInterrupt
        self.signal = signum

    def __enter__(self) -> "StopRequest":
        for sig in (signal.SIGINT, signal.SIGTERM):
            self.previous[sig] = signal.signal(sig, self.handle)
        return self

    def __exit__(self, *exc) -> None:
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)

    @property
    def exit_code(self) -> int:
        return 128 + int(self.signal or signal.SIGINT)


def resume_command(args, run_path: Path) -> str:
    """The command that goes on with this run where it stopped."""
    words = ["dltspec", "run", args.spec, *[w for o in args.set for w in ("--set", o)],
             "--backend", args.backend, *(["--device", args.device] if args.device else []),
             "--floatx", args.floatx, "--resume", str(run_path)]
    return shlex.join(words)


def announce(spec: api.Spec, splits, args) -> None:
    """What is about to be trained, and on which data (the file or folder read: next to the spec,
    found through DLTSPEC_DATA, or fetched)."""
    optimizer = spec.block("optimizer")
    n_batches = splits.size("train") // optimizer["batch_size"]
    sizes = "/".join(str(splits.size(s)) for s in ("train", "valid", "test"))
    dataset = spec.block("dataset")
    source = f" {splits.source}" if splits.source is not None else ""
    print(f"{spec.name}: {spec.block('classifier')['kind']} on {dataset['kind']}{source} "
          f"({sizes} examples, {splits.n_in} features), batch {optimizer['batch_size']} "
          f"({n_batches} minibatches/epoch), {args.backend}{' on ' + args.device if args.device else ''} "
          f"{args.floatx}; compiling...", flush=True)


def cmd_run(args) -> int:
    from dltspec.training.progress import STYLES, style_for
    from dltspec.training.record import RunError, open_run, resume, start_run

    if args.resume and args.out:
        return usage("run", "--out and --resume cannot be used together: a resumed run goes on in its own "
                     "directory") or EXIT_USAGE
    if args.force and not args.resume:
        return usage("run", "--force only makes sense with --resume") or EXIT_USAGE
    spec, lines = read_spec(args)  # first: a broken spec is reported without importing jax
    if spec is None:
        return EXIT_ERRORS
    if not resolve_placement(args):
        return EXIT_USAGE
    save_to = Path(args.save).expanduser() if args.save else (api.output_path(spec) if "save" in spec.data else None)
    try:
        if save_to is not None:
            api.check_output(spec, save_to, Span("--save", 1, 1, 1, len(args.save) + 1) if args.save else None)
        splits = api.load_data(spec, download=args.download)
    except SpecError as exc:
        report(exc.diagnostics, lines)
        return EXIT_ERRORS
    style = style_for(args.quiet, args.json)
    try:
        if args.resume:
            run, checkpoint = open_run(Path(args.resume))
        else:
            run, recorder = start_run(spec, Path(args.out) if args.out else None, args.backend, args.floatx,
                                      args.device, splits.source)
    except RunError as exc:
        print(f"dltspec run: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if style in ("bar", "lines"):
        if "sweep" in spec.data:
            from dltspec.sweeps.variants import variants

            print(f"{spec.name}: trained as written; its sweep block is for `dltspec sweep {args.spec}` "
                  f"({len(variants(spec))} variants)", flush=True)
        announce(spec, splits, args)
    training = api.compile_training(spec, backend=args.backend, floatX=args.floatx, splits=splits, device=args.device,
                                    budget=args.device_memory)
    if args.resume:
        try:
            recorder, problems = resume(run, checkpoint, training, args.force, Span("--resume", 1, 1, 1, 2))
        except RunError as exc:
            print(f"dltspec run: {exc}", file=sys.stderr)
            return EXIT_ERRORS
        report(problems, lines)
        if recorder is None:
            return EXIT_ERRORS
        if style in ("bar", "lines"):
            print(f"resuming {run.path} after iteration {training.state.iteration + 1} "
                  f"(epoch {training.state.iteration // training.policy.n_train_batches + 1})", flush=True)
    progress = STYLES[style](STARTED)
    with StopRequest() as stop:
        try:
            result = training.run(api.Observers(recorder, progress), should_stop=stop)
        except RunError as exc:  # the disk failed the run directory: what was written before stays good
            recorder.failed(training, str(exc))
            print(f"dltspec run: {exc}; stopped (the last checkpoint and best.pkl in {run.path} are kept)",
                  file=sys.stderr)
            return EXIT_ERRORS
    return finish_run(args, result, run, save_to, lines, stop, style)


def finish_run(args, result: api.Result, run, save_to: Path | None, lines, stop: StopRequest, style: str) -> int:
    """Report how the run ended, write ``--save`` for a finished one; the exit code."""
    say = lambda text: print(text, file=sys.stderr)  # noqa: E731 - why it did not finish: with the diagnostics
    report(result.problems, lines)
    if result.stopped_by == "diverged":
        kept = f"best parameters so far in {run.file('best.pkl')}; " if result.params else ""
        say(f"{kept}run directory {run.path}")
        return EXIT_DIVERGED
    if result.stopped_by == "interrupted":
        say(f"interrupted after iteration {result.iterations}; checkpoint written to {run.file('checkpoint.pkl')}, "
            f"best parameters so far in {run.file('best.pkl')}")
        say(f"resume with: {resume_command(args, run.path)}")
        return stop.exit_code
    if save_to is not None:
        try:
            api.save(result, save_to)
        except SpecError as exc:
            report(exc.diagnostics, lines)
            return EXIT_ERRORS
    if style != "json":
        print(result.summary())
        print(f"run directory {run.path}" + (f"; best parameters also saved to {save_to}" if save_to else ""))
    return EXIT_OK


def cmd_sweep(args) -> int:
    from dltspec.sweeps.variants import checked_variants

    spec, diagnostics, lines, _text = diagnose_path(args.spec, args.set, max_variants=0)  # the variants: next
    ready, found = checked_variants(spec, diagnostics) if spec is not None else ([], [])
    report(sorted(diagnostics + found, key=Diagnostic.sort_key), lines)
    if spec is None or has_errors(found):
        return EXIT_ERRORS
    if "sweep" not in spec.data:
        return usage("sweep", f"{args.spec} has no sweep block; add one, e.g. "
                     "`sweep grid { optimizer.learning_rate = [0.01, 0.1] }`") or EXIT_USAGE
    if args.list:
        for variant, _checked in ready:
            print(f"{variant.index:>4}  {variant.label}")
        return EXIT_OK
    from dltspec.sweeps.tasks import DEFAULT_ROOT, SweepDir, SweepError, dask_modules, plan, with_data

    try:
        dask_modules()
    except SweepError as exc:
        print(f"dltspec sweep: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if not resolve_placement(args):
        return EXIT_USAGE
    out = Path(args.out) if args.out else DEFAULT_ROOT / spec.name
    passed, problems = with_data(spec, ready)
    if problems:
        report(problems, lines)
        return EXIT_ERRORS
    planned = plan(spec, passed, out, args.backend, args.floatx, args.device, args.device_memory)
    try:
        sweep_dir = SweepDir.create(out)
        lock = sweep_dir.lock()
    except (SweepError, OSError) as exc:
        print(f"dltspec sweep: {getattr(exc, 'strerror', None) or exc}", file=sys.stderr)
        return EXIT_USAGE
    with lock:  # released however the sweep ends, a plan that cannot be written included
        try:
            sweep_dir.write_plan(spec, planned)
        except OSError as exc:
            print(f"dltspec sweep: cannot write the plan in {out}: {exc.strerror or exc}", file=sys.stderr)
            return EXIT_USAGE
        return sweep_in(sweep_dir, spec, planned, args)


def sweep_in(sweep_dir, spec, planned, args) -> int:
    """The rest of ``dltspec sweep``, holding the sweep directory's lock: train what has not ended,
    record it, print the ranked table."""
    from dltspec.sweeps.variants import swept_keys
    from dltspec.sweeps.tasks import ENDED, SweepError, connect, ranked, run_tasks, table

    out = sweep_dir.path
    keys = swept_keys(spec.data["sweep"])
    records = sweep_dir.records()
    todo = [p for p in planned if records.get(p.key, {}).get("status") not in ENDED]
    say = (lambda text: None) if args.quiet else (lambda text: print(text, flush=True))  # noqa: E731
    done = len(planned) - len(todo)
    sweep = spec.data["sweep"]
    twice = sweep["count"] - len(planned) if sweep["kind"] == "random" else 0
    say(f"sweep {spec.name}: {len(planned)} variants ({sweep['kind']}"
        + (f"; {twice} drawn twice, trained once" if twice > 0 else "") + ")"
        + (f", {done} already ended in {out}: skipped" if done else "")
        + (f"; {args.backend}{' on ' + args.device if args.device else ''} {args.floatx}" if todo else ""))

    variant_of = {p.key: p.variant for p in planned}
    tables_written = time.monotonic()

    def on_record(record: dict) -> None:
        nonlocal done, tables_written
        done += 1
        records[record["key"]] = record
        sweep_dir.append(record)  # durable at once; the ranked tables at most once a second, and at the end
        if time.monotonic() - tables_written >= 1.0:
            sweep_dir.write_tables(ranked(planned, records), keys)
            tables_written = time.monotonic()
        variant = variant_of[record["key"]]
        figures = (f"best valid {record['best_validation_error'] * 100:.2f} %, test "
                   f"{record['test_error'] * 100:.2f} %, {record['epochs']} epochs, {record['seconds']:.1f} s"
                   if record.get("best_validation_error") is not None and record.get("test_error") is not None
                   else record.get("reason") or "no result")
        say(f"[{done}/{len(planned)}] variant {variant.index} {record['status']}: {figures}  ({variant.label})")

    if todo:
        try:
            client, cluster = connect(args.scheduler, args.workers, args.connect_timeout)
        except SweepError as exc:
            print(f"dltspec sweep: {exc}", file=sys.stderr)
            return EXIT_USAGE
        say(f"running {len(todo)} on {'the cluster at ' + args.scheduler if args.scheduler else 'a local cluster'} "
            f"({len(client.scheduler_info().get('workers', {}))} workers); results in {out}")
        stop = StopRequest(at_once=True)  # SIGTERM as Ctrl-C: close the cluster, never leave its workers behind
        try:
            with stop:
                run_tasks(client, todo, spec.data["sweep"]["retries"], on_record)
        except KeyboardInterrupt:
            with contextlib.suppress(OSError):  # the tables as far as it got (results.jsonl has every record)
                sweep_dir.write_tables(ranked(planned, records), keys)
            print(f"dltspec sweep: interrupted with {done} of {len(planned)} variants ended (results in {out}); "
                  "run the same command again to go on", file=sys.stderr)
            return stop.exit_code
        except Exception as exc:  # noqa: BLE001 - a full disk, a scheduler gone: one line, what ended is kept
            from dltspec.sweeps.tasks import reason_of

            print(f"dltspec sweep: stopped with {done} of {len(planned)} variants ended (results in {out}): "
                  f"{getattr(exc, 'strerror', None) or reason_of(exc)}", file=sys.stderr)
            return EXIT_ERRORS
        finally:
            client.close()
            if cluster is not None:
                cluster.close()
    rows = ranked(planned, records)
    try:
        sweep_dir.write_tables(rows, keys)
    except OSError as exc:
        print(f"dltspec sweep: cannot write the results tables in {out}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_ERRORS
    print(table(rows, keys))
    failed = [row for row in rows if row["status"] == "failed"]
    say(f"ranked by best validation error; {out / 'results.csv'}, {out / 'results.json'}")
    if failed:
        print(f"dltspec sweep: {len(failed)} variant(s) failed (see the reason column of {out / 'results.csv'}); "
              "run the same command again to try them again", file=sys.stderr)
        return EXIT_ERRORS
    return EXIT_OK


def spec_paths(names: Sequence[str], command: str = "check") -> list[str] | None:
    """The files named on the command line, a directory standing for every ``*.dlt`` below it;
    ``None`` (usage error, reported) if a path does not exist, a directory holds no spec, or
    standard input (``-``) is named twice."""
    if names.count("-") > 1:
        return usage(command, "standard input ('-') can be named only once")
    paths = []
    for name in names:
        if name == "-":
            paths.append(name)
        elif Path(name).is_dir():
            found = sorted(str(p) for p in Path(name).rglob("*.dlt"))
            if not found:
                return usage(command, f"{name}: no *.dlt files in this directory")
            paths += found
        elif Path(name).exists():
            paths.append(name)
        else:
            return usage(command, f"{name}: no such file or directory")
    return paths


def usage(command: str, message: str) -> None:
    """Report a usage problem of ``dltspec COMMAND``; the caller exits 2."""
    print(f"dltspec {command}: {message}", file=sys.stderr)
    return None


def check_one(path: str, args) -> tuple[list[Diagnostic], object, str | None]:
    """All diagnostics of one spec file, a lookup of its source lines, and its text (``None`` if unreadable)."""
    try:  # with --data, a sweep's variants are checked once, below, then against their data
        spec, diagnostics, lines, text = diagnose_path(path, args.set, max_variants=0 if args.data else None)
    except SpecError as exc:
        return exc.diagnostics, lambda f: [], None
    if spec is not None and args.data:
        from dltspec.sweeps.variants import checked_variants
        from dltspec.sweeps.tasks import with_data

        ready, found = checked_variants(spec, diagnostics)
        diagnostics = sorted(diagnostics + found + with_data(spec, ready)[1], key=Diagnostic.sort_key)
    return diagnostics, lines, text


def print_shapes(text: str, path: str, overrides) -> None:
    """The model summary of a spec whose blocks are valid (its layers up to a shape error, if any)."""
    from dltspec.model.shapes import table

    found = api.layers(text, path if path != "-" else "<stdin>", overrides)
    if found is not None:
        print(table(found))


def cmd_check(args) -> int:
    if args.shapes and args.format != "text":
        print("dltspec check: --shapes prints a table for people: use it with --format text", file=sys.stderr)
        return EXIT_USAGE
    paths = spec_paths(args.specs)
    if paths is None:
        return EXIT_USAGE
    everything: list[Diagnostic] = []
    for path in paths:
        diagnostics, lines, text = check_one(path, args)
        everything += diagnostics
        if args.shapes and text is not None:
            print_shapes(text, path, args.set)
        if args.format == "text":
            report(diagnostics, lines)
    if args.format != "text":
        from dltspec.formats import FORMATS

        output = FORMATS[args.format](sorted(everything, key=Diagnostic.sort_key))
        print(output) if output else None
    failed = any(d.is_error or args.warnings_as_errors for d in everything)
    return EXIT_ERRORS if failed else EXIT_OK


def cmd_fmt(args) -> int:
    from dltspec.lang.fmt import fmt_paths

    paths = spec_paths(args.specs, "fmt")
    if paths is None:
        return EXIT_USAGE
    return fmt_paths(paths, check=args.check, diff=args.diff)


def run_and_params(args, command: str):
    """For ``eval``/``predict``: make ``args.spec`` a spec file and return the parameter file to use.

    ``args.spec`` may be a run directory: its ``spec.dlt`` is the spec, and the parameters are its
    ``best.pkl`` or the snapshot ``--snapshot N``. Returns ``None`` (a usage error, reported) when
    there is no parameter file to use.
    """
    from dltspec.training.rundir import RunDir, RunError, is_run

    if Path(args.spec).is_dir():
        if not is_run(Path(args.spec)):
            return usage(command, f"{args.spec} is a directory but not a run directory (it has no run.json)")
        run = RunDir(Path(args.spec))
        args.spec = str(run.file("spec.dlt"))
        if args.params:
            return args.params
        try:
            return str(run.params_file(args.snapshot))
        except RunError as exc:
            return usage(command, str(exc))
    if args.snapshot is not None:
        return usage(command, "--snapshot needs a run directory in place of the spec")
    if not args.params:
        return usage(command, "which parameters? give --params FILE, or a run directory in place of the spec")
    return args.params


def cmd_eval(args) -> int:
    params = run_and_params(args, "eval")
    if params is None:
        return EXIT_USAGE
    spec, lines = read_spec(args)  # first: a broken spec is reported without importing jax
    if spec is None:
        return EXIT_ERRORS
    if not resolve_placement(args):
        return EXIT_USAGE
    try:
        errors = api.evaluate(spec, params, backend=args.backend, floatX=args.floatx, device=args.device,
                              budget=args.device_memory)
    except SpecError as exc:
        report(exc.diagnostics, lines)
        return EXIT_ERRORS
    print(f"validation error {errors['valid'] * 100:f} %, test error {errors['test'] * 100:f} %")
    return EXIT_OK


def cmd_predict(args) -> int:
    from dltspec.training import params as param_files
    from dltspec.predict import InputError, examples, n_in_of, predictions, probabilities_function

    params_path = run_and_params(args, "predict")
    if params_path is None:
        return EXIT_USAGE
    spec, lines = read_spec(args)
    if spec is None:
        return EXIT_ERRORS
    if not resolve_placement(args):
        return EXIT_USAGE
    where = Span.point(str(params_path))
    try:
        values, _meta = param_files.load(Path(params_path))
        n_in = n_in_of(spec, values)
        rows = [(name, examples(Path(name), spec, n_in, args.invert)) for name in args.inputs]
        probabilities = probabilities_function(spec, values, args.backend, args.floatx)
    except param_files.ParamsError as exc:
        report(exc.as_diagnostics(where), lines)
        return EXIT_ERRORS
    except InputError as exc:
        print(f"dltspec predict: {exc}", file=sys.stderr)
        return EXIT_ERRORS
    for name, x in rows:
        for p in predictions(name, x, probabilities(x)):
            print(f"{p.source}: {p.label} (probability {p.probability:.4f})")
    return EXIT_OK


def run_dirs(names: Sequence[str], command: str):
    from dltspec.training.rundir import RunDir, RunError

    try:
        return [RunDir.open(Path(name)) for name in names]
    except RunError as exc:
        return usage(command, str(exc))


def cmd_plot(args) -> int:
    from dltspec.pictures import PictureError, curves_png
    from dltspec.sweeps.tasks import SWEEP

    if (Path(args.run) / SWEEP).is_file():
        return plot_sweep(args)
    runs = run_dirs([args.run, *args.compare], "plot")
    if runs is None:
        return EXIT_USAGE
    out = Path(args.output) if args.output else runs[0].file("curves.png" if not args.compare else "compare.png")
    try:
        curves_png(runs, out)
    except (PictureError, OSError) as exc:
        print(f"dltspec plot: {getattr(exc, 'strerror', None) or exc}", file=sys.stderr)
        return EXIT_ERRORS
    print(f"wrote {out}")
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
    from dltspec.training import params as param_files
    from dltspec.pictures import PictureError, filters_png
    from dltspec.predict import InputError, image_shape_of, n_in_of
    from dltspec.model import shapes
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


def cmd_fetch(args) -> int:
    from dltspec.data.loaders import DataError, mnist_from_idx
    from dltspec.data.fetch import FetchError, fetch_mnist

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


def percent(value) -> str:
    return f"{value * 100:.2f}" if isinstance(value, (int, float)) else "-"


def cmd_runs(args) -> int:
    from dltspec.training.rundir import runs_under

    root = Path(args.dir)
    if not root.exists():
        return usage("runs", f"{root}: no such directory") or EXIT_USAGE
    rows = [["run", "status", "best valid %", "test %", "epochs", "seconds", "backend"]]
    for run in runs_under(root):
        summary = run.summary() or {"status": "unknown"}  # a run killed before its summary was written
        rows.append([run.path.name if run.path != root else str(root), str(summary.get("status", "?")),
                     percent(summary.get("best_validation_error")), percent(summary.get("test_error")),
                     str(summary.get("epochs", "-")), str(summary.get("seconds", "-")),
                     str(summary.get("backend", "-"))])
    if len(rows) == 1:
        print(f"no runs in {root}")
        return EXIT_OK
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(w) if i in (0, 1, 6) else cell.rjust(w)
                        for i, (cell, w) in enumerate(zip(row, widths))).rstrip())
    return EXIT_OK


def cmd_schema(args) -> int:
    if args.markdown:
        from dltspec.lang.reference import markdown

        print(markdown(), end="")
        return EXIT_OK
    from dltspec.lang.schema import schema

    print(json.dumps(schema(), indent=2))
    return EXIT_OK


def cmd_lsp(args) -> int:
    try:
        from dltspec.lsp import serve
    except ImportError as exc:
        if exc.name not in ("pygls", "lsprotocol") and not str(exc.name).startswith(("pygls.", "lsprotocol.")):
            raise
        print("dltspec lsp: the language server needs pygls: pip install 'dltspec[lsp]'", file=sys.stderr)
        return EXIT_USAGE
    serve()
    return EXIT_OK


def count(text: str) -> int:
    """A whole number >= 0, for argparse."""
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"expected a whole number >= 0, got '{text}'")
    return int(text)


def memory_size(text: str) -> int:
    from dltspec.data.stream import SizeError, parse_size

    try:
        return parse_size(text)
    except SizeError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_params_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--params", metavar="FILE", help="a parameter file written by dltspec run (best.pkl, a "
                   "snapshot, --save's file); default with a run directory: its best.pkl")
    p.add_argument("--snapshot", type=int, metavar="ITERATION", help="with a run directory: the snapshot "
                   "taken at this iteration (as metrics.jsonl numbers them)")


def add_spec_args(p: argparse.ArgumentParser, what: str = "the .dlt spec file ('-' reads standard input)") -> None:
    from dltspec.backends.options import BACKEND_NAMES, DEVICES, FLOATX

    p.add_argument("spec", help=what)
    p.add_argument("--set", action="append", default=[], metavar="BLOCK.KEY=VALUE",
                   help="override a value of the spec, e.g. --set stopping.n_epochs=2 (repeatable)")
    p.add_argument("--backend", choices=BACKEND_NAMES, help="jax: the PyTensor graph through JAX with the data "
                   "on the device, several minibatches per dispatch (the default where jax is installed); or a "
                   "PyTensor backend, one call per minibatch: numba (the default without jax), c, python")
    p.add_argument("--device", choices=DEVICES, help="cpu (default), gpu (the jax backend on a GPU) or auto "
                   "(the GPU if jax sees one, else the CPU)")
    p.add_argument("--floatx", choices=FLOATX, default="float32", help="float type of data and parameters "
                   "(default: float32, as the tutorial on a GPU)")
    p.add_argument("--device-memory", type=memory_size, metavar="SIZE", help="memory the data may take on the "
                   "device, e.g. 256MB: larger data is trained a chunk of minibatches at a time, with the same "
                   "result (default: the spec's run.device_memory, else no limit)")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="dltspec", description="Declare, check and train classic neural-network "
                                "classifiers from a .dlt spec.")
    p.add_argument("--version", action="version", version=f"dltspec {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser("run", help="train a spec and save the best parameters")
    add_spec_args(run)
    run.add_argument("--save", metavar="PATH", help="also write the best parameters here (default: the spec's "
                     "save block, if any; they are always in the run directory as best.pkl)")
    run.add_argument("--out", metavar="DIR", help="the run directory (default: runs/<spec name>-<timestamp>)")
    run.add_argument("--download", action="store_true", help="download a missing `dataset mnist` (its IDX "
                     "files, checked against their checksums) into the cache first")
    run.add_argument("--resume", metavar="RUN", help="go on with the run in directory RUN from its last checkpoint")
    run.add_argument("--force", action="store_true", help="with --resume: go on even if the spec or backend differ")
    shown = run.add_mutually_exclusive_group()
    shown.add_argument("-q", "--quiet", action="store_true", help="print only the final result")
    shown.add_argument("--json", action="store_true", help="print JSON events (start, validation, end) on "
                       "standard output, one per line, instead of progress")
    run.set_defaults(handler=cmd_run)

    sw = sub.add_parser("sweep", help="train every variant of a spec's sweep block on a Dask cluster")
    add_spec_args(sw, "the .dlt spec file with a sweep block ('-' reads standard input)")
    sw.add_argument("--scheduler", metavar="ADDRESS", help="the scheduler of an existing Dask cluster, e.g. "
                    "tcp://10.0.0.5:8786 (default: a local cluster started here, one worker per core)")
    sw.add_argument("--connect-timeout", type=float, default=30, metavar="SECONDS", help="give up on a --scheduler "
                    "that does not answer within this long (default 30)")
    sw.add_argument("--workers", type=count, metavar="N", help="workers of the local cluster (default: one per core)")
    sw.add_argument("--out", metavar="DIR", help="the sweep directory (default: sweeps/<spec name>); a sweep run "
                    "again in the same directory skips the variants that already ended")
    sw.add_argument("--list", action="store_true", help="print the variants and stop (needs neither Dask nor data)")
    sw.add_argument("-q", "--quiet", action="store_true", help="print only the results table")
    sw.set_defaults(handler=cmd_sweep)

    chk = sub.add_parser("check", help="check specs without training")
    chk.add_argument("specs", nargs="+", metavar="SPEC", help="spec files, directories (every *.dlt below) "
                     "or '-' for standard input")
    chk.add_argument("--format", choices=("text", "json", "github", "sarif"), default="text",
                     help="text (default, for people), json, github (GitHub Actions annotations) "
                     "or sarif (SARIF 2.1.0, for code scanning)")
    chk.add_argument("--warnings-as-errors", action="store_true", help="exit 1 on warnings too")
    chk.add_argument("--set", action="append", default=[], metavar="BLOCK.KEY=VALUE",
                     help="override a value before checking (repeatable)")
    chk.add_argument("--data", action="store_true", help="also load the data and check sizes against it")
    chk.add_argument("--shapes", action="store_true", help="print each spec's layers, output shapes and "
                     "parameter counts (a model summary)")
    chk.set_defaults(handler=cmd_check)

    fmt = sub.add_parser("fmt", help="rewrite specs in the canonical layout")
    fmt.add_argument("specs", nargs="+", metavar="SPEC", help="spec files, directories (every *.dlt below) "
                     "or '-' (standard input, written to standard output)")
    fmt.add_argument("--check", action="store_true", help="write nothing; list the files that would change "
                     "and exit 1 if any would")
    fmt.add_argument("--diff", action="store_true", help="write nothing; print the changes as a unified diff "
                     "and exit 1 if there are any")
    fmt.set_defaults(handler=cmd_fmt)

    ev = sub.add_parser("eval", help="load saved parameters and print validation and test errors")
    add_spec_args(ev, "the .dlt spec file, or a run directory (its spec and best parameters)")
    add_params_args(ev)
    ev.set_defaults(handler=cmd_eval)

    pr = sub.add_parser("predict", help="classify images or .npy arrays with trained parameters")
    add_spec_args(pr, "the .dlt spec file, or a run directory (its spec and best parameters)")
    add_params_args(pr)
    pr.add_argument("inputs", nargs="+", metavar="INPUT", help="image files (PNG, JPEG, ...) or .npy arrays")
    pr.add_argument("--invert", choices=("auto", "yes", "no"), default="auto", help="invert images' grey levels "
                    "(auto: when the image is mostly light, as dark ink on paper; MNIST digits are light on dark)")
    pr.set_defaults(handler=cmd_predict)

    pl = sub.add_parser("plot", help="draw a run's learning curves, or a sweep's results, as a PNG")
    pl.add_argument("run", metavar="RUN", help="a run directory, or a sweep directory (its best validation error "
                    "against each swept value)")
    pl.add_argument("--compare", nargs="+", default=[], metavar="RUN", help="more runs to draw on the same axes")
    pl.add_argument("-o", "--output", metavar="PNG", help="where to write (default: RUN/curves.png, "
                    "RUN/compare.png with --compare)")
    pl.set_defaults(handler=cmd_plot)

    fi = sub.add_parser("filters", help="draw a run's first-layer filters as a PNG grid of tiles")
    fi.add_argument("run", metavar="RUN", help="a run directory")
    fi.add_argument("--snapshot", type=int, metavar="ITERATION", help="the snapshot of this iteration "
                    "(default: the best parameters)")
    fi.add_argument("-o", "--output", metavar="PNG", help="where to write (default: RUN/filters.png)")
    fi.set_defaults(handler=cmd_filters)

    fe = sub.add_parser("fetch", help="download a data set into the cache (checked against its checksums)")
    fe.add_argument("dataset", choices=("mnist",), help="mnist: LeCun's four IDX files")
    fe.add_argument("--to", metavar="DIR", help="where to put the files (default: <cache>/mnist-idx, where "
                    "`dataset mnist` finds them when its pickle is missing)")
    fe.add_argument("--mirror", metavar="URL", help="the base URL to download from (default: "
                    "$DLTSPEC_MNIST_MIRROR, else maintained public mirrors in turn)")
    fe.add_argument("--timeout", type=float, default=30, metavar="SECONDS", help="give up on a connection "
                    "that sends nothing for this long (default 30)")
    fe.add_argument("--retries", type=count, default=2, metavar="N", help="tries again after a failed download "
                    "of a file (default 2)")
    fe.set_defaults(handler=cmd_fetch)

    rs = sub.add_parser("runs", help="list runs with their status and figures")
    rs.add_argument("dir", nargs="?", default="runs", help="a directory of runs, or one run (default: runs)")
    rs.set_defaults(handler=cmd_runs)

    sch = sub.add_parser("schema", help="print the JSON Schema of the spec language")
    sch.add_argument("--markdown", action="store_true", help="print the reference of every block and key instead")
    sch.set_defaults(handler=cmd_schema)

    lsp = sub.add_parser("lsp", help="run the language server for editors (LSP over stdio)")
    lsp.add_argument("--stdio", action="store_true", help="talk over standard input and output (the default "
                     "and only transport; accepted because clients pass it)")
    lsp.set_defaults(handler=cmd_lsp)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.handler(args)
    except SpecError as exc:
        report(exc.diagnostics, source_lines(getattr(args, "spec", ""), "", getattr(args, "set", [])))
        return EXIT_ERRORS
    except KeyboardInterrupt:
        print("dltspec: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # the reader went away (`dltspec check ... | head`): stop quietly, as cat does
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error when Python flushes
        return EXIT_BROKEN_PIPE


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
