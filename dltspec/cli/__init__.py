"""The ``dltspec`` command: a thin layer over :mod:`dltspec.api`.

Exit codes: 0 success; 1 the spec, its data or a parameter file has errors
(nothing was trained or written); 2 bad usage, or a --device / --backend that cannot run
here (no GPU, no jax), or a run directory that cannot be created or resumed; 3 training
diverged (the best parameters so far are kept); 130 interrupted by Ctrl-C, 143 by SIGTERM
(``run`` writes a checkpoint first and says how to resume); 141 the output pipe was closed by its reader.

One module per command group (:mod:`.check`, :mod:`.run`, :mod:`.sweep`, :mod:`.runs`); each parses
nothing, calls :mod:`dltspec.api`, prints, and returns an exit code. :func:`main` is the one boundary.
"""
from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Sequence

from dltspec import __version__
from dltspec.cli.check import cmd_check, cmd_lsp, cmd_schema
from dltspec.cli.common import (  # noqa: F401
    EXIT_BROKEN_PIPE,
    EXIT_DIVERGED,
    EXIT_ERRORS,
    EXIT_INTERNAL,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    STARTED,
    StopRequest,
    count,
    memory_size,
    report,
    source_lines,
    spec_text,
)
from dltspec.cli.export import cmd_export
from dltspec.cli.fmt import cmd_fmt
from dltspec.cli.run import cmd_eval, cmd_predict, cmd_run
from dltspec.cli.runs import cmd_fetch, cmd_filters, cmd_plot, cmd_runs, cmd_sample
from dltspec.cli.sweep import cmd_sweep
from dltspec.diagnostics import DltspecError, SpecError


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
    run.add_argument("--tensorboard", metavar="DIR", help="also write each validation point as TensorBoard events "
                     "in DIR/<run directory name> (as run { tensorboard = true } does in the run directory; "
                     "needs pip install 'dltspec[tensorboard]'); view them with tensorboard --logdir DIR")
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
    sw.add_argument("--workers", type=count, metavar="N", help="workers of the local cluster "
                    "(default: one per core, or one per task where there are fewer)")
    sw.add_argument("--out", metavar="DIR", help="the sweep directory (default: sweeps/<spec name>); a sweep run "
                    "again in the same directory skips the variants that already ended")
    sw.add_argument("--no-stack", dest="stack", action="store_false", help="train each variant alone (default: the "
                    "variants that compile to one graph train together as one program, each with its own loop)")
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
    chk.add_argument("--expand", action="store_true", help="print a preset classifier (logistic, mlp, lenet) as "
                     "the classifier layers and layer blocks it stands for")
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

    ex = sub.add_parser("export", help="write a run's trained classifier as an ONNX graph, or its parameters as "
                        ".npz or safetensors", description="Write a run's trained classifier: --format onnx, its "
                        "forward pass as an ONNX graph (input: float32 rows [N, n_in] as the data set gives them; "
                        "outputs: probabilities [N, n_out] and class [N]); npz or safetensors, its parameter arrays "
                        "as trained. Every format carries the spec, its SHA-256 and the run's figures as metadata.")
    ex.add_argument("run", metavar="RUN", help="a run directory written by dltspec run")
    ex.add_argument("--snapshot", type=int, metavar="ITERATION", help="the snapshot of this iteration (default: "
                    "the best parameters, best.pkl)")
    ex.add_argument("--format", choices=("onnx", "npz", "safetensors"), default="onnx", help="onnx (default; "
                    "needs onnx), npz (plain arrays, read with numpy.load without pickle) or safetensors (needs "
                    "safetensors); pip install 'dltspec[export]' installs both")
    ex.add_argument("-o", "--output", metavar="FILE", help="where to write (default: RUN/model.<format>, "
                    "RUN/model-iter-<N>.<format> for a snapshot)")
    ex.set_defaults(handler=cmd_export)

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

    sa = sub.add_parser("sample", help="draw Gibbs samples of a run's RBM (pretrain rbm), as the RBM tutorial does")
    sa.add_argument("run", metavar="RUN", help="a run directory whose spec pre-trains an RBM")
    sa.add_argument("--chains", type=count, default=20, metavar="N", help="chains, each from a test example "
                    "(default 20)")
    sa.add_argument("--samples", type=count, default=10, metavar="N", help="samples per chain (default 10)")
    sa.add_argument("--steps", type=count, default=1000, metavar="N", help="Gibbs steps between two samples "
                    "(default 1000)")
    sa.add_argument("--seed", type=int, default=123, help="where the draws start (default 123)")
    sa.add_argument("-o", "--output", metavar="PNG", help="where to write (default: RUN/samples.png)")
    sa.set_defaults(handler=cmd_sample)

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
    except DltspecError as exc:  # a problem a stage named, that its command did not print itself
        print(f"dltspec {args.command}: {exc.message}", file=sys.stderr)
        return EXIT_ERRORS
    except KeyboardInterrupt:
        from dltspec import interrupts

        code = interrupts.finished(128 + int(interrupts.STATE.signal or signal.SIGINT))
        print("dltspec: interrupted", file=sys.stderr)
        return code
    except BrokenPipeError:  # the reader went away (`dltspec check ... | head`): stop quietly, as cat does
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error when Python flushes
        return EXIT_BROKEN_PIPE
    except Exception as exc:  # noqa: BLE001 - the net: never a traceback; every known case has its own error
        where = crash_file(args.command, exc)
        details = f"details in {where}" if where else "the traceback could not be written anywhere"
        print(f"dltspec {args.command}: internal error ({type(exc).__name__}: {exc}); {details}; please report "
              "it with that file", file=sys.stderr)
        return EXIT_INTERNAL


def crash_file(command: str, exc: BaseException) -> str | None:
    """Write the traceback of an unexpected exception to ``<cache>/crashes/`` (atomically); its path, or None."""
    import time
    import traceback

    from dltspec import __version__
    from dltspec.files import cache_dir, write_atomic

    text = (f"dltspec {__version__}, command {command}, argv {sys.argv!r}, python {sys.version.split()[0]}\n\n"
            + "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)))
    try:
        folder = cache_dir() / "crashes"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"crash-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.txt"
        write_atomic(path, text.encode("utf-8"), mode=0o600)
        return str(path)
    except OSError:
        return None
