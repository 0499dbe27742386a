"""``dltspec sweep``: prints what :func:`dltspec.api.sweep` does, and maps how it ended to an exit code."""
from __future__ import annotations

import sys
from pathlib import Path

from dltspec.cli.common import (
    EXIT_ERRORS,
    EXIT_OK,
    EXIT_USAGE,
    StopRequest,
    diagnose_path,
    report,
    resolve_placement,
    usage,
)
from dltspec.diagnostics import Diagnostic, SpecError, has_errors


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
    from dltspec import api
    from dltspec.sweeps.orchestrate import SweepInterrupted, SweepStopped
    from dltspec.sweeps.tasks import SweepError, dask_modules, table

    try:
        dask_modules()
    except SweepError as exc:
        return usage("sweep", str(exc)) or EXIT_USAGE
    if not resolve_placement(args, load=False):
        return EXIT_USAGE
    stop = StopRequest(at_once=True)  # SIGTERM as Ctrl-C: close the cluster, never leave its workers behind
    try:
        with stop:
            result = api.sweep(spec, out=Path(args.out) if args.out else None, backend=args.backend,
                               floatX=args.floatx, device=args.device, budget=args.device_memory,
                               scheduler=args.scheduler, workers=args.workers, connect_timeout=args.connect_timeout,
                               observer=Said(args), ready=ready, stack=args.stack)
    except SpecError as exc:
        report(exc.diagnostics, lines)
        return EXIT_ERRORS
    except SweepError as exc:
        return usage("sweep", str(exc)) or EXIT_USAGE
    except SweepInterrupted as exc:
        print(f"dltspec sweep: {exc}", file=sys.stderr)
        return stop.exit_code
    except SweepStopped as exc:
        print(f"dltspec sweep: {exc}", file=sys.stderr)
        return EXIT_ERRORS
    print(table(result.rows, result.keys))
    Said(args).say(f"ranked by best validation error; {result.out / 'results.csv'}, {result.out / 'results.json'}")
    if result.failed:
        print(f"dltspec sweep: {len(result.failed)} variant(s) failed (see the reason column of "
              f"{result.out / 'results.csv'}); run the same command again to try them again", file=sys.stderr)
        return EXIT_ERRORS
    return EXIT_OK


class Said:
    """The sweep's progress, as lines on standard output (none with ``--quiet``)."""

    def __init__(self, args):
        self.args = args

    def say(self, text: str) -> None:
        if not self.args.quiet:
            print(text, flush=True)

    def planned(self, spec, planned, done, out) -> None:
        args, sweep = self.args, spec.data["sweep"]
        twice = sweep["count"] - len(planned) if sweep["kind"] == "random" else 0
        todo = len(planned) - done
        self.say(f"sweep {spec.name}: {len(planned)} variants ({sweep['kind']}"
                 + (f"; {twice} drawn twice, trained once" if twice > 0 else "") + ")"
                 + (f", {done} already ended in {out}: skipped" if done else "")
                 + (f"; {args.backend}{' on ' + args.device if args.device else ''} {args.floatx}" if todo else ""))

    def connected(self, n_workers, scheduler, n_todo, out) -> None:
        self.say(f"running {n_todo} on {'the cluster at ' + scheduler if scheduler else 'a local cluster'} "
                 f"({n_workers} workers); results in {out}")

    def ended(self, record, planned, done, total) -> None:
        variant = planned.variant
        figures = (f"best valid {record['best_validation_error'] * 100:.2f} %, test "
                   f"{record['test_error'] * 100:.2f} %, {record['epochs']} epochs, {record['seconds']:.1f} s"
                   if record.get("best_validation_error") is not None and record.get("test_error") is not None
                   else record.get("reason") or "no result")
        self.say(f"[{done}/{total}] variant {variant.index} {record['status']}: {figures}  ({variant.label})")
