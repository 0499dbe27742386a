"""Time one epoch of the tutorial's logistic regression and MLP on MNIST: dltspec's JAX path (one
dispatch per epoch, every split resident on the device) against PyTorch eager as a PyTorch user writes
it (bench/peers.py: same model, initial parameters and minibatch order, a Python step per minibatch); time
``dltspec run``'s start-up on the device with the compile cache cold, warm and off (and whether the device's executables
could be kept: the cache reads each back once); then reproduce the tutorial's figures with the JAX
path. Writes a Markdown report to --out, section by section.

    python3 bench/gpu_epoch.py --data .data --out $OUT/RESULTS.md            # on a GPU machine
    python bench/gpu_epoch.py --data ../shared/data --device cpu --quick --out /tmp/r.md   # smoke run

An epoch's time is the median over the timed epochs, after one warm-up epoch (which compiles);
it covers training only (every minibatch once), synchronised with the device at the end.
"""
from __future__ import annotations

import argparse
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import dltspec  # noqa: E402
from dltspec import api  # noqa: E402

SPECS = {"logistic": ROOT / "specs" / "logistic_sgd.dlt", "mlp": ROOT / "specs" / "mlp.dlt"}
PUBLISHED = {"logistic": "validation 7.500000 %, test 7.489583 %, 74 epochs (float32 on CPU with dltspec: the same)",
             "mlp": "validation after epochs 1-5: 9.62, 8.61, 8.00, 7.60, 7.30 %",
             "mlp full": "validation 1.69 %, test 1.65 %, 828 epochs"}


class Report:
    """The Markdown report, rewritten to ``path`` after every line so that a killed run leaves what it had."""

    def __init__(self, path: Path):
        self.path, self.lines = path, []

    def add(self, *lines: str) -> None:
        self.lines += lines
        for line in lines:
            print(line, flush=True)
        self.path.write_text("\n".join(self.lines) + "\n", encoding="utf-8")


def read_spec(model: str, data: Path, overrides=()) -> dltspec.Spec:
    return dltspec.read(SPECS[model], overrides=[f'dataset.path="{(data / "mnist.pkl.gz").resolve()}"',
                                                 *overrides])


def dltspec_epochs(spec, splits, device: str, n_epochs: int):
    """Seconds of each epoch on the JAX path (the first compiles), the initial parameters and
    the first epoch's mean cost."""
    from dltspec.backends.jax_backend import build

    program = build(spec, splits, floatX="float32", device_name=device)
    initial = program.values()
    n = program.n_batches["train"]
    times, costs = [], []
    for epoch in range(n_epochs):
        start = time.perf_counter()
        chunk = program.train_chunk(epoch * n, n)  # returns once the device is done (its report is fetched)
        times.append(time.perf_counter() - start)
        costs.append(chunk.total / n)
    program.error("valid")  # compiles
    start = time.perf_counter()
    program.error("valid")
    validation = time.perf_counter() - start
    return times, initial, costs[0], validation


def sync(dev) -> None:
    from peers import synchronize

    synchronize(dev)


def median_after_warmup(times: list[float]) -> float:
    return statistics.median(times[1:]) if len(times) > 1 else times[0]


def versions(device: str) -> str:
    import jax

    parts = [f"Python {platform.python_version()}", f"numpy {np.__version__}", f"jax {jax.__version__}",
             f"dltspec {dltspec.__version__}"]
    try:
        import pytensor

        parts.append(f"pytensor {pytensor.__version__}")
        import torch

        parts.append(f"torch {torch.__version__}")
    except ImportError:
        pass
    return ", ".join(parts)


def card(device: str) -> str:
    import jax

    from dltspec.backends.jax_backend import device as jax_device

    name = jax_device(device).device_kind
    try:
        import torch

        if device == "gpu" and torch.cuda.is_available():
            name = torch.cuda.get_device_name()
    except ImportError:
        pass
    return f"{name} (jax: {jax_device(device)}, {jax.default_backend()} backend)"


def epoch_table(report: Report, data: Path, args) -> dict[str, float]:
    report.add("## One epoch, training only", "",
               f"Median of {args.epochs} epochs after one warm-up epoch (which compiles). dltspec: one dispatch "
               "per epoch (`train_chunk`, a `fori_loop` over the minibatches of the device-resident split). "
               "PyTorch: eager, one Python step per minibatch, preloaded tensors. Same initial parameters; "
               "the first epoch's mean cost of both is shown as a check that they train the same model.", "",
               "| model | batch | minibatches | dltspec JAX s/epoch | PyTorch eager s/epoch | speed-up | "
               "validation pass (dltspec) | first-epoch mean cost dltspec / torch |",
               "|---|---|---|---|---|---|---|---|")
    per_epoch = {}
    for model in ("logistic", "mlp"):
        try:
            spec = read_spec(model, data, ["dataset.n_train=10000"] if args.quick else [])
            splits = api.load_data(spec)
            ours, initial, our_cost, validation = dltspec_epochs(spec, splits, args.device, args.epochs + 1)
            per_epoch[model] = median_after_warmup(ours)
            try:
                from peers import torch_epochs

                theirs, their_cost = torch_epochs(spec, splits, initial, args.device, args.epochs + 1)
                torch_s, ratio = median_after_warmup(theirs), median_after_warmup(theirs) / per_epoch[model]
                torch_cells = f"{torch_s:.4f} | {ratio:.1f}x", f"{their_cost:.5f}"
            except ImportError as exc:
                torch_cells = f"n/a ({exc}) | n/a", "n/a"
            bs = spec.block("optimizer")["batch_size"]
            report.add(f"| {model} | {bs} | {splits.size('train') // bs} | {per_epoch[model]:.4f} "
                       f"(warm-up {ours[0]:.2f}) | {torch_cells[0]} | {validation * 1000:.1f} ms | "
                       f"{our_cost:.5f} / {torch_cells[1]} |")
        except Exception:  # keep the other rows
            report.add(f"| {model} | failed: {traceback.format_exc().splitlines()[-1]} |")
    report.add("")
    return per_epoch


def reproduction_row(report: Report, label: str, read, device: str, published: str) -> None:
    """Train the spec ``read()`` returns with the JAX path on ``device`` and add its row to the report
    (a failure becomes the row, so the other rows still come back)."""
    points = []
    try:
        spec = read()
        start = time.perf_counter()
        result = dltspec.train(spec, backend="jax", floatX="float32", device=device, on_validation=points.append)
        wall = time.perf_counter() - start
        first = ", ".join(f"{p.validation_error * 100:.2f}" for p in points[:5])
        report.add(f"| {label} | {result.best_validation_error * 100:f} % | {result.test_error * 100:f} % | "
                   f"{result.epochs} ({result.stopped_by}) | {result.best_iteration} | {first} | "
                   f"{result.seconds:.1f} s ({wall:.1f} s with compilation) | {published} |")
    except Exception:
        report.add(f"| {label} | failed: {traceback.format_exc().splitlines()[-1]} |")


def reproduce(report: Report, model: str, data: Path, args, overrides=()) -> None:
    overrides = list(overrides)
    reproduction_row(report, f"{model}{' ' + ' '.join(overrides) if overrides else ''}",
                     lambda: read_spec(model, data, overrides + (["stopping.n_epochs=3"] if args.quick else [])),
                     args.device, PUBLISHED[model if overrides or model != "mlp" else "mlp full"])


LAUNCHER = ("import os, subprocess, sys; p = subprocess.Popen(sys.argv[1:]); _, status, usage = os.wait4(p.pid, 0); "
            "print(f'peak-rss-kib {usage.ru_maxrss}', file=sys.stderr); sys.exit(os.waitstatus_to_exitcode(status))")


def launch(backend: str, env: dict, data: Path, *more: str) -> tuple[float | None, int, int]:
    """Run ``dltspec run`` on the logistic spec for one epoch (``more``: further arguments, e.g. a device),
    in ``env``, its files in ``env["TMP_OUT"]``; return the seconds from launch to its first training step
    (None if it never got there), its peak RSS in KiB and its exit status."""
    argv = [sys.executable, "-m", "dltspec", "run", str(ROOT / "specs" / "logistic_sgd.dlt"),
            "--set", f'dataset.path="{(data / "mnist.pkl.gz").resolve()}"', "--set", "stopping.n_epochs=1",
            "--backend", backend, "--save", str(Path(env["TMP_OUT"]) / "p.pkl"),
            "--out", tempfile.mkdtemp(prefix="run-", dir=env["TMP_OUT"]) + "/run", *more]  # not ./runs
    start = time.perf_counter()
    # through a small launcher: a child forked from this big process would count its pages in its peak RSS
    proc = subprocess.Popen([sys.executable, "-c", LAUNCHER, *argv], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)
    ready = None
    for line in proc.stdout:
        if line.startswith("first training step done") and ready is None:
            ready = time.perf_counter() - start
    peak = int(re.search(r"peak-rss-kib (\d+)", proc.stderr.read())[1])
    return ready, peak, proc.wait()


def startup_section(report: Report, data: Path, args) -> None:
    """Start-up of ``dltspec run`` on this device with dltspec's compile cache (dltspec/xla_cache.py) empty,
    then warm, then warm with the cache off; and what the cache kept (its executables read back here)."""
    report.add("## Start-up: `dltspec run specs/logistic_sgd.dlt`, one epoch", "",
               "Seconds from launch to the first training step, in a fresh cache folder: cold, then warm twice, "
               "then with `DLTSPEC_XLA_CACHE=0` (PyTensor's graph built and XLA compiling, as before the cache).", "",
               "| cold | warm | warm | warm, cache off | executables kept | programs kept | machine marked |",
               "|---|---|---|---|---|---|---|")
    def first_step(env: dict) -> str:
        ready, _peak, status = launch("jax", env, data, "--device", args.device)
        return f"{ready:.1f} s" if ready is not None else f"failed (exit {status})"

    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "DLTSPEC_CACHE_DIR": f"{tmp}/cache", "TMP_OUT": tmp}
        times = [first_step(env) for _ in range(3)] + [first_step({**env, "DLTSPEC_XLA_CACHE": "0"})]
        xla = Path(tmp, "cache", "xla")
        kept = [len(list(xla.glob("*.xla"))), len(list(xla.glob("programs/*.npz"))),
                "yes" if list(xla.glob("rejected-*")) else "no"]
    report.add(f"| {' | '.join(times)} | {' | '.join(str(k) for k in kept)} |", "")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, required=True, help="directory holding mnist.pkl.gz")
    p.add_argument("--out", type=Path, required=True, help="Markdown report to write")
    p.add_argument("--device", choices=("gpu", "cpu"), default="gpu")
    p.add_argument("--epochs", type=int, default=5, help="timed epochs after the warm-up (default 5)")
    p.add_argument("--quick", action="store_true", help="a smoke run: 10,000 training examples, 1 timed epoch, "
                   "reproductions cut to 3 epochs")
    p.add_argument("--budget", type=float, default=330, help="seconds the whole script may take: the full MLP "
                   "run (828 epochs) is attempted only if its estimate fits what is left (default 330)")
    args = p.parse_args(argv)
    if args.quick:
        args.epochs = 1
    began = time.perf_counter()
    report = Report(args.out)
    report.add("# dltspec on JAX: epoch times and reproductions", "",
               f"Card: {card(args.device)}", "", f"Versions: {versions(args.device)}", "")
    per_epoch = epoch_table(report, args.data, args)
    startup_section(report, args.data, args)
    report.add("## Reproductions with the JAX path", "",
               "| spec | best validation | test | epochs | best iteration | first validations (%) | "
               "training time | tutorial |", "|---|---|---|---|---|---|---|---|")
    reproduce(report, "logistic", args.data, args)
    reproduce(report, "mlp", args.data, args, ["stopping.n_epochs=5"])
    estimate = per_epoch.get("mlp", float("inf")) * 830 * 1.3 + 30
    left = args.budget - (time.perf_counter() - began)
    if not args.quick and estimate < left:
        reproduce(report, "mlp", args.data, args)
    else:
        report.add("", f"Full MLP run skipped: estimated {estimate:.0f} s, {left:.0f} s left of --budget.")
    report.add("", f"Whole script: {time.perf_counter() - began:.0f} s.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
