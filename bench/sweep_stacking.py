"""What stacking gains: N variants of one model trained as one stack against the same N one after another,
against the local Dask cluster without stacking, and against one variant alone.

    DLTSPEC_DATA=../shared/data python bench/sweep_stacking.py                  # every row below, 1 repeat
    python bench/sweep_stacking.py --models logistic/20 --sizes 8 --repeats 3   # one row

Each model (logistic regression at batch 600 and 20, the tutorial's MLP of 500 tanh units at batch 20) is
swept over N learning rates (a geometric grid), N = 4, 8 and 16, on MNIST (``--n-train`` training
examples, default all 50,000; the validation and test splits whole), for ``EPOCHS`` (or ``--epochs``)
epochs with a patience that never stops a variant early, so that every mode trains the same steps. Each mode is a whole
command, process start to exit (what a user waits for), timed in turn in one run:

Every command starts from an empty XLA cache (``<cache>/xla``), as the first sweep of these variants does:
each mode compiles what it runs (a stack its stacked programs, the others each variant's own). Then ``one
alone`` and ``stacked`` run again with the cache they left (``warm``: a sweep run again, a sweep resumed, the
bench run twice), where a single variant reads its program and executables and a stack its stacks
(:mod:`dltspec.backends.stack_store`).

- ``one alone``: ``dltspec run`` of the first variant, the machine's default threading;
- ``stacked``: ``dltspec sweep``, stacking on (the default): on a CPU of C cores, C stacks of N/C on C
  single-threaded workers;
- ``Dask, no stacking``: ``dltspec sweep --no-stack``, one variant per task on a worker per core;
- ``one after another``: one process training every variant in turn with the function a worker runs
  (``train_variant``), the default threading.

Beside the wall times: the training loops' own seconds (each run's ``seconds``, which leave out start-up
and compilation), the stack's against one variant's. Rewrites its section of bench/RESULTS.md.
"""
from __future__ import annotations

import argparse
import json
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from results import publish  # noqa: E402

from dltspec.files import cache_dir  # noqa: E402
from dltspec.sweeps.tasks import local_workers  # noqa: E402

BEGIN, END = "<!-- stacking:begin (bench/sweep_stacking.py rewrites this section) -->", "<!-- stacking:end -->"
CLASSIFIERS = {
    "logistic": "classifier logistic { n_out = 10 }",
    "mlp": "classifier mlp { hidden = [500]  activation = tanh  seed = 1234  n_out = 10 }",
}
SPEC = """\
dataset mnist {{ path = "mnist.pkl.gz"  n_train = {n_train} }}
{classifier}
loss nll
optimizer sgd {{ learning_rate = 0.01  batch_size = {batch} }}
stopping patience {{ n_epochs = {epochs}  patience = 100000000 }}
sweep grid {{ optimizer.learning_rate = [{rates}] }}
"""
MODES = ("one alone", "stacked", "Dask, no stacking", "one after another")
WARM = ("one alone", "stacked")  # run again, with the cache their cold run left
#: epochs per variant by default: enough that one variant's training loop, not the start-up, is most of
#: what a user waits for (logistic regression trains an epoch of 50,000 examples in about 0.1 s here)
EPOCHS = {"logistic/600": 40, "logistic/20": 10, "mlp/20": 2}


def spec_text(model: str, n: int, epochs: int, n_train: int) -> str:
    kind, batch = model.split("/")
    rates = ", ".join(f"{0.005 * (40 ** (i / max(1, n - 1))):.4g}" for i in range(n))  # 0.005 .. 0.2
    return SPEC.format(n_train=n_train, classifier=CLASSIFIERS[kind], batch=batch, epochs=epochs, rates=rates)


def sequential(spec_path: str, out: str, device: str | None = None) -> None:
    """Plan the sweep and train every variant in turn in this process (what ``--sequential`` runs)."""
    import dltspec
    from dltspec.sweeps.tasks import plan, train_variant, with_data
    from dltspec.sweeps.variants import checked_variants

    spec = dltspec.read(spec_path)
    passed, _problems = with_data(spec, checked_variants(spec)[0])
    for p in plan(spec, passed, Path(out), "jax", "float32", device, None):
        record = train_variant(p.task)
        assert record["status"] == "finished", record


def timed(command: list[str], cold: bool = True) -> float:
    """The seconds ``command`` took, start to exit, from an empty XLA cache if ``cold`` (as a first sweep of these
    variants finds it: every mode compiles what it runs); a failure ends the bench."""
    if cold:
        shutil.rmtree(cache_dir() / "xla", ignore_errors=True)
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stdout}{done.stderr}")
    return seconds


def loop_seconds(out: Path) -> float:
    """The longest training loop's seconds among the runs in ``out`` (one run, or a sweep's)."""
    summaries = [out / "summary.json"] if (out / "summary.json").exists() else list(out.glob("runs/*/summary.json"))
    return max(json.loads(p.read_text(encoding="utf-8"))["seconds"] for p in summaries)


def default_platform() -> str:
    """JAX's default device here, as a word (``cpu``, ``gpu``)."""
    import jax

    return jax.default_backend()


def commands(spec: Path, out: Path, device: str | None) -> dict[str, list[str]]:
    run = [sys.executable, "-m", "dltspec"]
    on = ["--device", device] if device else []
    return {
        "one alone": [*run, "run", str(spec), "-q", "--backend", "jax", *on, "--out", str(out)],
        "stacked": [*run, "sweep", str(spec), "-q", "--backend", "jax", *on, "--out", str(out)],
        "Dask, no stacking": [*run, "sweep", str(spec), "-q", "--backend", "jax", "--no-stack", *on, "--out", str(out)],
        "one after another": [sys.executable, __file__, "--sequential", str(spec), "--out", str(out), *on],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=["logistic/600", "logistic/20", "mlp/20"])
    parser.add_argument("--sizes", type=int, nargs="+", default=[4, 8, 16])
    parser.add_argument("--epochs", type=int, help="epochs per variant, for every model (default: EPOCHS)")
    parser.add_argument("--n-train", type=int, default=50000)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--device", help="the JAX device of every mode (default: JAX's; `gpu` on a GPU machine)")
    parser.add_argument("--no-write", action="store_true", help="print, do not rewrite bench/RESULTS.md")
    parser.add_argument("--sequential", metavar="SPEC", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.sequential:
        return sequential(args.sequential, args.out, args.device)
    work = Path(tempfile.mkdtemp(prefix="dltspec-stacking-bench-"))
    rows = []
    for model in args.models:
        for n in args.sizes:
            spec = work / f"{model.replace('/', '-')}-{n}.dlt"
            epochs = args.epochs or EPOCHS[model]
            spec.write_text(spec_text(model, n, epochs, args.n_train), encoding="utf-8")
            runs = [*MODES, *(f"{mode}, warm" for mode in WARM)]
            wall: dict[str, list[float]] = {mode: [] for mode in runs}
            loops: dict[str, list[float]] = {mode: [] for mode in runs}
            for repeat in range(args.repeats):
                for mode in MODES:
                    for warm in (False, True) if mode in WARM else (False,):
                        name = f"{mode}, warm" if warm else mode
                        out = work / f"{spec.stem}-{repeat}-{name.replace(' ', '_').replace(',', '')}"
                        wall[name].append(timed(commands(spec, out, args.device)[mode], cold=not warm))
                        loops[name].append(loop_seconds(out))
                        print(f"{model} N={n} repeat {repeat + 1}: {name}: {wall[name][-1]:.1f} s "
                              f"(loop {loops[name][-1]:.1f} s)", file=sys.stderr, flush=True)
            w = {mode: statistics.median(v) for mode, v in wall.items()}
            loop = {mode: statistics.median(v) for mode, v in loops.items()}
            rows.append(f"| {model} | {epochs} | {n} | {w['one alone']:.1f} s | {w['stacked']:.1f} s "
                        f"(**{w['stacked'] / w['one alone']:.2f}x**) | {w['one alone, warm']:.1f} s | "
                        f"{w['stacked, warm']:.1f} s (**{w['stacked, warm'] / w['one alone, warm']:.2f}x**) | "
                        f"{w['Dask, no stacking']:.1f} s "
                        f"({w['Dask, no stacking'] / w['stacked']:.2f}x) | {w['one after another']:.1f} s "
                        f"({w['one after another'] / w['stacked']:.2f}x) | {loop['one alone']:.1f} s | "
                        f"{loop['stacked']:.1f} s ({loop['stacked'] / loop['one alone']:.2f}x) |")
    cores = local_workers()
    section = [
        "## Stacking: N variants as one program against one alone, Dask without stacking, one after another",
        "",
        "```sh",
        f"python bench/sweep_stacking.py --models {' '.join(args.models)} --sizes {' '.join(map(str, args.sizes))} "
        + (f"--epochs {args.epochs} " if args.epochs else "") + f"--n-train {args.n_train} --repeats {args.repeats}",
        "```",
        "",
        f"Machine: {platform.machine()}, {cores} cores, CPython {platform.python_version()}, JAX on "
        f"{args.device or default_platform()}. "
        f"MNIST, {args.n_train:,} training examples (validation and test whole), N learning rates, the epochs "
        "given per variant (none stops early); whole commands, process start to exit, "
        f"median of {args.repeats}, each from an empty XLA cache (as a first sweep: every mode compiles what it "
        "runs), and `warm`: the same command again with the cache its cold run left. `stacked` is "
        f"`dltspec sweep` (on {cores} cores: {cores} stacks of N/{cores}, one per single-threaded worker, where "
        "the model stacks on a CPU; the MLP, 1.6 MB of parameters, does not and trains alone); its ratio "
        "is to one variant alone (`dltspec run`); the other modes' ratios say how much longer than `stacked` they "
        "take (both from an empty cache). The loop columns: the training loops' own seconds (start-up and "
        "compilation left out), the "
        "longest stack's against one variant's.",
        "",
        "| model/batch | epochs | N | one alone | stacked (vs one alone) | one alone, warm | stacked, warm (vs one "
        "alone, warm) | Dask, no stacking (vs stacked) | one after another (vs stacked) | loop: one alone | "
        "loop: stacked (vs one) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
        *rows,
    ]
    publish(BEGIN, END, section, write=not args.no_write)


if __name__ == "__main__":
    main()
