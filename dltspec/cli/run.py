"""``dltspec run``, ``eval`` and ``predict``: training a spec, and using what it trained."""
from __future__ import annotations

import shlex
import sys
from pathlib import Path

from dltspec import api
from dltspec.cli.common import (
    EXIT_DIVERGED,
    EXIT_ERRORS,
    EXIT_OK,
    EXIT_USAGE,
    STARTED,
    StopRequest,
    read_spec,
    report,
    resolve_placement,
    usage,
)
from dltspec.diagnostics import Span, SpecError


def resume_command(args, run_path: Path) -> str:
    """The command that goes on with this run where it stopped."""
    words = ["dltspec", "run", args.spec, *[w for o in args.set for w in ("--set", o)],
             "--backend", args.backend, *(["--device", args.device] if args.device else []),
             "--floatx", args.floatx, *(["--tensorboard", args.tensorboard] if args.tensorboard else []),
             "--resume", str(run_path)]
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


def check_tensorboard(spec: api.Spec, flag: str | None) -> None:
    """Refuse before anything is loaded when the run asks for TensorBoard events (``--tensorboard DIR``,
    or the spec's ``run.tensorboard``) and tensorboardX is not installed: DLT505, at the flag or the key."""
    from dltspec.training import tensorboard

    if not tensorboard.wanted(spec.data, flag):
        return
    problem = tensorboard.missing()
    if problem:
        span = Span("--tensorboard", 1, 1, 1, len(flag) + 1) if flag else spec.positions.value(("run", "tensorboard"))
        raise SpecError(tensorboard.TensorBoardMissing(problem).as_diagnostics(span))


def cmd_run(args) -> int:
    from dltspec.training.progress import STYLES, style_for
    from dltspec.training.record import RunError, RunFinished, RunStartError, begin

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
    tensorboard = Path(args.tensorboard).expanduser() if args.tensorboard else None
    try:
        check_tensorboard(spec, args.tensorboard)
        if save_to is not None:
            api.check_output(spec, save_to, Span("--save", 1, 1, 1, len(args.save) + 1) if args.save else None)
        splits = api.load_data(spec, download=args.download)
    except SpecError as exc:
        report(exc.diagnostics, lines)
        return EXIT_ERRORS
    style = style_for(args.quiet, args.json)

    def compiled():
        if style in ("bar", "lines"):
            if "sweep" in spec.data:
                from dltspec.sweeps.variants import variants

                print(f"{spec.name}: trained as written; its sweep block is for `dltspec sweep {args.spec}` "
                      f"({len(variants(spec))} variants)", flush=True)
            announce(spec, splits, args)
        return api.compile_training(spec, backend=args.backend, floatX=args.floatx, splits=splits,
                                    device=args.device, budget=args.device_memory)

    try:
        begun = begin(spec, compiled, args.backend, args.floatx, args.device,
                      out=Path(args.out) if args.out else None, resume_from=Path(args.resume) if args.resume else None,
                      force=args.force, where=Span("--resume", 1, 1, 1, 2), source=splits.source,
                      tensorboard=tensorboard)
    except RunFinished as exc:
        print(f"dltspec run: {exc}")
        return EXIT_OK
    except RunStartError as exc:
        print(f"dltspec run: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except RunError as exc:
        print(f"dltspec run: {exc}", file=sys.stderr)
        return EXIT_ERRORS
    run, training, recorder = begun.run, begun.training, begun.recorder
    report(begun.problems, lines)
    if recorder is None:
        return EXIT_ERRORS
    if begun.resumed and style in ("bar", "lines"):
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
    from dltspec.predict import InputError, examples, n_in_of, predictions, probabilities_function
    from dltspec.training import params as param_files

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
