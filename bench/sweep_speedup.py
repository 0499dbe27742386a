"""What a sweep gains from Dask: an 8-variant sweep on the local cluster against the same variants
trained one after another.

    DLTSPEC_DATA=../shared/data python bench/sweep_speedup.py     # 8 MLPs on a slice of MNIST, 3 repeats
    python bench/sweep_speedup.py --data digits --epochs 100 500   # no download; start-up dominates
    python bench/sweep_speedup.py --stacking [ARGS]                # stacking: bench/sweep_stacking.py ARGS

``--stacking`` runs the stacking comparison instead (N variants of logistic/600, logistic/20 and MLP/20 as
one stack against one alone, the local Dask cluster without stacking and one after another, N = 4, 8, 16:
see bench/sweep_stacking.py, which takes the arguments that follow).

The sweep is 4 learning rates x 2 hidden layers of an MLP. Each repeat times, as whole commands
from process start to exit, in turn:

- ``one after another``: one process plans the sweep and trains every variant in turn with the
  function a Dask worker runs (``dltspec.sweeps.tasks.train_variant``), with the machine's default
  threading (XLA and BLAS may use every core for one variant);
- ``one after another, 1 thread``: the same, each variant single-threaded as a sweep worker is;
- ``dltspec sweep``: the command, on a local cluster of one single-threaded worker per core.

Every mode trains the same variants from scratch in a new directory (the compile caches are warm
after the first repeat for all of them alike). Reports medians and the speed-up of the sweep
against each, and rewrites its section of bench/RESULTS.md.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from results import publish  # noqa: E402

from dltspec.sweeps.tasks import WORKER_ENV, local_workers  # noqa: E402

BEGIN, END = "<!-- sweep:begin (bench/sweep_speedup.py rewrites this section) -->", "<!-- sweep:end -->"
#: the workloads: the same 4 x 2 grid of an MLP on MNIST (a 10,000-example training slice; needs
#: DLTSPEC_DATA) or on the bundled 8x8 digits (no download; each variant trains in about 2 s, so
#: start-up costs dominate)
SPECS = {
    "mnist": """\
dataset mnist {{ path = "mnist.pkl.gz"  n_train = 10000 }}
classifier mlp {{ hidden = [500]  activation = tanh  seed = 1234  n_out = 10 }}
loss nll
regularizer l2 {{ weight = 0.0001 }}
optimizer sgd {{ learning_rate = 0.01  batch_size = 20 }}
stopping patience {{ n_epochs = {epochs}  patience = 1000000 }}
sweep grid {{
    optimizer.learning_rate = [0.01, 0.03, 0.1, 0.3]
    classifier.hidden = [[300], [500]]
}}
""",
    "digits": """\
dataset digits {{ valid_fraction = 0.2  test_fraction = 0.2  seed = 0 }}
classifier mlp {{ hidden = [64]  activation = tanh  seed = 1234  n_out = 10 }}
loss nll
optimizer sgd {{ learning_rate = 0.1  batch_size = 20 }}
stopping patience {{ n_epochs = {epochs}  patience = 1000000 }}
sweep grid {{
    optimizer.learning_rate = [0.01, 0.03, 0.1, 0.3]
    classifier.hidden = [[32], [64]]
}}
""",
}
WORKLOADS = {"mnist": "MNIST, 10,000 training examples, hidden [300] or [500]",
             "digits": "the 8x8 digits, hidden [32] or [64]"}


def sequential(spec_path: str, out: str) -> None:
    """Plan the sweep and train every variant in turn in this process (what ``--sequential`` runs)."""
    import dltspec
    from dltspec.sweeps.tasks import plan, train_variant, with_data
    from dltspec.sweeps.variants import checked_variants

    spec = dltspec.read(spec_path)
    passed, _problems = with_data(spec, checked_variants(spec)[0])
    for p in plan(spec, passed, Path(out), "jax", "float32", None, None):
        record = train_variant(p.task)
        assert record["status"] == "finished", record


def timed(command: list[str], env: dict) -> tuple[float, str]:
    """The seconds ``command`` took, start to exit, and its standard output; a failure ends the bench."""
    start = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stdout}{done.stderr}")
    return seconds, done.stdout


def loop_seconds(command: list[str], env: dict) -> float:
    """The training loop's seconds, as ``dltspec run --json`` reports them at its end."""
    out = timed(command, env)[1]
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")][-1]["seconds"]


def ceiling(spec: Path, work: Path, repeats: int, cores: int) -> tuple[float, float]:
    """``(alone, together)``: the loop seconds of the sweep's first variant trained single-threaded
    alone, and (the mean) of ``cores`` copies trained at the same time."""
    import dltspec
    from dltspec.sweeps.variants import variants

    first = variants(dltspec.read(spec))[0]
    env = {**os.environ, **WORKER_ENV}

    def command(n: int) -> list[str]:
        return [sys.executable, "-m", "dltspec", "run", str(spec), "--backend", "jax", "--json",
                *[w for o in first.overrides for w in ("--set", o)],
                "--out", str(work / f"ceiling-{time.time_ns()}-{n}")]

    alone, together = [], []
    for _ in range(repeats):
        alone.append(loop_seconds(command(0), env))
        with ThreadPoolExecutor(cores) as pool:
            together.append(statistics.mean(pool.map(lambda n: loop_seconds(command(n), env), range(cores))))
    return statistics.median(alone), statistics.median(together)


def main() -> None:
    if sys.argv[1:2] == ["--stacking"]:
        import sweep_stacking

        sys.argv = [sweep_stacking.__file__, *sys.argv[2:]]
        return sweep_stacking.main()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", choices=SPECS, default="mnist", help="the workload (default: mnist, a 10,000-"
                        "example slice, found through DLTSPEC_DATA)")
    parser.add_argument("--epochs", type=int, nargs="+", default=[5, 15], help="epochs per variant; several "
                        "values: one table row each (the longer the variants, the less the start-up counts)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-write", action="store_true", help="print, do not rewrite bench/RESULTS.md")
    parser.add_argument("--sequential", metavar="SPEC", help=argparse.SUPPRESS)  # with --out: as dltspec sweep
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.sequential:
        return sequential(args.sequential, args.out)
    work = Path(tempfile.mkdtemp(prefix="dltspec-sweep-bench-"))
    cores = local_workers()  # the local cluster's workers
    env = {**os.environ}
    modes = {
        "one after another": ([sys.executable, __file__, "--sequential"], env),
        "one after another, 1 thread": ([sys.executable, __file__, "--sequential"], {**env, **WORKER_ENV}),
        "dltspec sweep": ([sys.executable, "-m", "dltspec", "sweep", "--backend", "jax", "-q"], env),
    }
    rows, ceilings = [], []
    for epochs in args.epochs:
        spec = work / f"grid-{epochs}.dlt"
        spec.write_text(SPECS[args.data].format(epochs=epochs), encoding="utf-8")
        times: dict[str, list[float]] = {mode: [] for mode in modes}
        for repeat in range(args.repeats):
            for mode, (command, mode_env) in modes.items():
                out = work / f"{epochs}-{len(times[mode])}-{mode.replace(' ', '_').replace(',', '')}"
                times[mode].append(timed([*command, str(spec), "--out", str(out)], mode_env)[0])
                print(f"{epochs} epochs, repeat {repeat + 1}: {mode}: {times[mode][-1]:.1f} s", file=sys.stderr)
        median = {mode: statistics.median(values) for mode, values in times.items()}
        sweep = median["dltspec sweep"]
        rows += [f"| {epochs} | {mode} | {median[mode]:.1f} s | {median[mode] / sweep:.2f}x |" for mode in modes]
        ceilings.append((epochs, ceiling(spec, work, args.repeats, cores)))
    section = [
        "## Sweeps: 8 variants on the local cluster against one after another",
        "",
        "```sh",
        f"python bench/sweep_speedup.py --data {args.data} --epochs {' '.join(map(str, args.epochs))} "
        f"--repeats {args.repeats}",
        "```",
        "",
        f"Machine: {platform.machine()}, {cores} cores, CPython {platform.python_version()}; 8 MLPs "
        f"({WORKLOADS[args.data]}; 4 learning rates x 2 hidden layers, JAX on the CPU); whole commands, process "
        f"start to exit, median of {args.repeats}.",
        "",
        "| epochs per variant | mode | wall time | `dltspec sweep` is faster by |",
        "|---|---|---|---|",
        *rows,
        "",
        f"The local cluster has {cores} single-threaded workers; each starts its own process, imports "
        "dltspec, PyTensor and JAX, and compiles each variant it trains: a fixed cost that short variants "
        "do not earn back.",
        "",
        f"What this machine can gain at most: one variant's training loop, single-threaded, alone and as {cores} "
        f"copies at once (`dltspec run`, the loop's own seconds, median of {args.repeats}): "
        + "; ".join(f"{epochs} epochs: {alone:.1f} s alone, {together:.1f} s each at once, so {cores} at once do "
                    f"{cores * alone / together:.2f}x the work of one" for epochs, (alone, together) in ceilings) + ".",
    ]
    publish(BEGIN, END, section, write=not args.no_write)


if __name__ == "__main__":
    main()
