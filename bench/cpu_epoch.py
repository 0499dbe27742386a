"""The CPU side of the speed issue, side by side in one run; rewrites the CPU section of bench/RESULTS.md.

    python bench/cpu_epoch.py --data ../shared/data            # 15 to 18 minutes on 2 cores
    python bench/cpu_epoch.py --data ../shared/data --quick    # a smoke run (1,000 examples, 1 epoch)

1. **Epoch time** (MNIST, the tutorial's hyper-parameters, every minibatch once; median of --epochs
   epochs after a warm-up epoch; each contender in a process of its own, the contenders taking turns
   for --rounds rounds, and the median of the rounds reported) of :data:`CONTENDERS`: the BLAS floor
   (the matrix products of an epoch timed alone with numpy: forward, weight gradients and
   back-propagated errors, the part no implementation can skip); plain numpy (forward and backward
   written out); the PyTorch program a PyTorch user would write (``bench/peers.py``), eager and under
   ``torch.compile``; dltspec's training steps alone on PyTensor's Numba backend (a call per
   minibatch) and on its JAX path (one dispatch per epoch); and ``dltspec run`` with its default
   settings, an epoch as its user waits for it (validation, test at a new best, metrics record and
   checkpoint included: :func:`waited_epoch`). The goals are ratios of the last to PyTorch eager.

   A process each, because libraries leave their threads spinning after a parallel region
   (PyTorch's OpenMP, OpenBLAS, XLA's pool): measured in one process, an epoch of dltspec's
   JAX path right after PyTorch's took 1.3x as long as in a fresh process.
2. **Start-up**: seconds from launching ``dltspec run`` until its first training step has run
   (the line ``first training step done ...``; lazy compilation included), with empty caches
   (cold) and again (warm: 5 launches each, the contenders taking turns), for the Numba backend,
   the JAX path, and the JAX path with dltspec's compile cache (``dltspec/xla_cache.py``) off.
3. **Peak memory** of a logistic regression run on MNIST against the size of the data set in memory.
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
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from gpu_epoch import SPECS, dltspec_epochs, launch, median_after_warmup, read_spec  # noqa: E402
from peers import torch_epochs  # noqa: E402
from results import rewrite_section  # noqa: E402

import dltspec  # noqa: E402
from dltspec import api  # noqa: E402

RESULTS = ROOT / "bench" / "RESULTS.md"
BEGIN, END = "<!-- cpu:begin (bench/cpu_epoch.py rewrites this section) -->", "<!-- cpu:end -->"
#: (model, batch size, overrides, goal): issue 24's rows and goals, ``dltspec run`` as waited / PyTorch eager
CASES = [("logistic", 600, [], 0.6), ("logistic", 20, ["optimizer.batch_size=20"], 0.2), ("mlp", 20, [], 0.45),
         ("lenet", 500, [], 0.8)]


def numba_epochs(spec, splits, n_epochs: int) -> list[float]:
    """Seconds of each epoch of PyTensor's Numba backend, one compiled call per minibatch."""
    from dltspec.backends.pytensor_backend import build

    program = build(spec, splits, backend="numba")
    n = program.n_batches["train"]
    times = []
    for _ in range(n_epochs):
        start = time.perf_counter()
        for i in range(n):
            program.train_step(i)
        times.append(time.perf_counter() - start)
    return times


def layer_sizes(initial: dict) -> list[tuple[np.ndarray, np.ndarray]]:
    names = sorted({name.split(".")[0] for name in initial}, key=lambda s: (s == "output", s))
    return [(initial[f"{n}.W"].copy(), initial[f"{n}.b"].copy()) for n in names]


def numpy_epochs(spec, splits, initial: dict, n_epochs: int) -> list[float]:
    """Seconds of each epoch of the same model written out in numpy (tanh hidden layers, softmax, NLL,
    the spec's L1/L2 penalties on the weights, plain SGD), float32 throughout."""
    x, y = splits.arrays["train"]
    x = np.ascontiguousarray(x, dtype=np.float32)
    layers = layer_sizes(initial)
    bs, lr = spec.block("optimizer")["batch_size"], np.float32(spec.block("optimizer")["learning_rate"])
    penalties = [(reg["kind"], np.float32(reg["weight"])) for reg in spec.regularizers if reg["weight"]]
    n = len(y) // bs
    rows = np.arange(bs)
    times = []
    for _ in range(n_epochs):
        start = time.perf_counter()
        for i in range(n):
            xb, yb = x[i * bs:(i + 1) * bs], y[i * bs:(i + 1) * bs]
            activations = [xb]
            for W, b in layers[:-1]:
                activations.append(np.tanh(activations[-1] @ W + b))
            z = activations[-1] @ layers[-1][0] + layers[-1][1]
            z -= z.max(axis=1, keepdims=True)
            p = np.exp(z)
            p /= p.sum(axis=1, keepdims=True)
            p[rows, yb] -= 1
            delta = p / np.float32(bs)
            for k in range(len(layers) - 1, -1, -1):
                W, b = layers[k]
                gW, gb = activations[k].T @ delta, delta.sum(axis=0)
                for kind, weight in penalties:
                    gW += weight * (np.sign(W) if kind == "l1" else 2 * W)
                if k:
                    delta = (delta @ W.T) * (1 - activations[k] ** 2)
                W -= lr * gW
                b -= lr * gb
        times.append(time.perf_counter() - start)
    return times


def gemm_seconds(m: int, k: int, n: int, repeat: int) -> float:
    """Median seconds of one float32 (m, k) @ (k, n) product with numpy's BLAS."""
    a, b = np.random.rand(m, k).astype(np.float32), np.random.rand(k, n).astype(np.float32)
    a @ b
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def products(spec, bs: int) -> list[tuple[int, int, int]]:
    """The ``(m, k, n)`` matrix products of one minibatch, layer by layer (from the shapes ``dltspec check``
    infers): the forward product, the weight gradient and (above the first layer) the back-propagated error.
    A convolution counts as dltspec computes it, one im2col product:
    ``(out_h * out_w * bs, channels * kh * kw) @ (.., kernels)``."""
    from dltspec.model.shapes import product, summary

    layers, _ = summary(spec.data)
    block = spec.block("classifier")
    shapes = []
    for prev, layer in zip(layers, layers[1:]):
        if layer.name.startswith("conv"):
            pool, k = block["pool"], block["kernel_size"]
            out_h, out_w = layer.shape[1] * pool, layer.shape[2] * pool
            shapes.append((out_h * out_w * bs, prev.shape[0] * k * k, layer.shape[0]))
        else:
            shapes.append((bs, product(prev.shape), layer.shape[0]))
    out = []
    for i, (m, k, n) in enumerate(shapes):
        out += [(m, k, n), (k, m, n)] + ([(m, n, k)] if i else [])
    return out


def blas_floor(spec, bs: int, n_batches: int) -> float:
    """Seconds of an epoch's matrix products alone (:func:`products`), each timed with numpy's BLAS."""
    total = 0.0
    for m, k, n in products(spec, bs):
        repeat = max(5, min(200, 2000 // max(1, m * k * n // 1_000_000)))
        total += gemm_seconds(m, k, n, repeat)
    return total * n_batches


def waited_epoch(model: str, overrides: list[str], data: Path, epochs: int, quick: bool) -> float:
    """Seconds per epoch of ``dltspec run`` with its default settings (the default backend, a run directory,
    a checkpoint at every validation point, progress lines), as a user waits for them: the median gap between
    the ``seconds`` of consecutive end-of-epoch records of its ``metrics.jsonl`` (each gap holds an epoch's
    training, its validation pass, the test pass at a new best, the metrics record and the checkpoint)."""
    import json

    spec = SPECS.get(model, ROOT / "specs" / "lenet.dlt")
    sets = [f'dataset.path="{(data / "mnist.pkl.gz").resolve()}"', *overrides, f"stopping.n_epochs={epochs + 1}",
            *(["dataset.n_train=1000"] if quick else [])]
    with tempfile.TemporaryDirectory() as tmp:
        argv = [sys.executable, "-m", "dltspec", "run", str(spec), *[a for o in sets for a in ("--set", o)],
                "--out", f"{tmp}/run", "--save", f"{tmp}/best.pkl"]
        done = subprocess.run(argv, capture_output=True, text=True)
        if done.returncode:
            sys.exit(f"{' '.join(argv)} failed ({done.returncode}):\n{done.stderr}")
        records = [json.loads(line) for line in Path(tmp, "run", "metrics.jsonl").read_text().splitlines()]
    ends = [r["seconds"] for r in records if r["minibatch"] == records[0]["minibatch"]]
    return statistics.median(b - a for a, b in zip(ends, ends[1:])) if len(ends) > 1 else ends[0]


def cell(value: float, digits: int = 3) -> str:
    return "n/a" if value != value else f"{value:.{digits}f}"  # NaN: not measured


CONTENDERS = ("floor", "numpy", "torch", "torch.compile", "numba", "jax", "dltspec run")


def case_spec(model: str, data: Path, overrides: list[str], quick: bool):
    quick_set = ["dataset.n_train=1000"] if quick else []
    if model == "lenet":
        import gpu_lenet

        return gpu_lenet.read_spec(data, quick_set)
    return read_spec(model, data, overrides + quick_set)


def initial_params(spec, splits) -> dict[str, np.ndarray]:
    """The spec's initial parameters, as every dltspec backend starts from them (nothing compiled)."""
    import pytensor
    import pytensor.tensor as pt

    from dltspec.model.graph import symbolic

    x, y = pt.matrix("x", dtype="float32"), pt.vector("y", dtype="int32")
    with pytensor.config.change_flags(floatX="float32"):
        model = symbolic(spec, splits.n_in, splits.n_out(spec.block("classifier")), x, y).model
    return {name: p.get_value() for name, p in model.params}


def contender_seconds(contender: str, model: str, overrides: list[str], data: Path, epochs: int,
                      quick: bool) -> float:
    """Seconds per epoch of one contender on one model, in this process (see ``--child``)."""
    if contender == "dltspec run":
        return waited_epoch(model, overrides, data, epochs, quick)
    spec = case_spec(model, data, overrides, quick)
    splits = api.load_data(spec)
    bs = spec.block("optimizer")["batch_size"]
    if contender == "jax":
        return median_after_warmup(dltspec_epochs(spec, splits, "cpu", epochs + 1)[0])
    if contender == "numba":
        return median_after_warmup(numba_epochs(spec, splits, epochs + 1))
    if contender == "floor":
        return blas_floor(spec, bs, splits.size("train") // bs)
    initial = initial_params(spec, splits)
    if contender == "numpy":
        return median_after_warmup(numpy_epochs(spec, splits, initial, epochs + 1))
    compiled = contender == "torch.compile"
    return median_after_warmup(torch_epochs(spec, splits, initial, "cpu", epochs + 1, compiled=compiled)[0])


def in_child(contender: str, model: str, overrides: list[str], data: Path, epochs: int, quick: bool) -> float:
    """:func:`contender_seconds` in a fresh process."""
    argv = [sys.executable, __file__, "--child", contender, model, *overrides, "--data", str(data),
            "--epochs", str(epochs)] + (["--quick"] if quick else [])
    done = subprocess.run(argv, capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"{' '.join(argv)} failed ({done.returncode}):\n{done.stderr}")
    return float(re.search(r"^seconds (\S+)$", done.stdout, re.M)[1])


def epoch_rows(data: Path, args) -> list[str]:
    """The epoch table: every contender of :data:`CONTENDERS` per model, and dltspec's ratios.

    The goal is judged on ``dltspec run``'s epoch as a user waits for it, against PyTorch eager."""
    rows = ["| model, batch | BLAS floor | plain numpy | PyTorch eager | PyTorch `torch.compile` | "
            "dltspec Numba, training only | dltspec JAX, training only | `dltspec run`, as waited | "
            "`dltspec run` / PyTorch eager (goal) | / `torch.compile` | / floor | JAX training only / eager |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for model, bs, overrides, goal in CASES:
        # a Numba epoch of LeNet takes about a minute on two cores: fewer epochs, and one round of it
        epochs = max(1, args.epochs // 3) if model == "lenet" else args.epochs
        rounds = {c: [] for c in CONTENDERS}
        for r in range(args.rounds):
            for c in CONTENDERS:
                if model == "lenet" and (c == "numpy" or (c == "numba" and r)):  # no numpy LeNet
                    continue
                rounds[c].append(in_child(c, model, overrides, data, epochs, args.quick))
        f = {c: statistics.median(v) if v else float("nan") for c, v in rounds.items()}
        waited = f["dltspec run"]
        met = "met" if waited / f["torch"] <= goal else "not met"
        timed = f" ({epochs} timed epoch{'s' if epochs > 1 else ''})" if epochs != args.epochs else ""
        rows.append(f"| {model}, {bs}{timed} | " + " | ".join(cell(f[k]) for k in CONTENDERS)
                    + f" | {waited / f['torch']:.2f} (≤ {goal}: {met}) | {waited / f['torch.compile']:.2f} | "
                    f"{cell(waited / f['floor'], 2)} | {f['jax'] / f['torch']:.2f} |")
        print(rows[-1], "  rounds:", {c: [round(t, 4) for t in v] for c, v in rounds.items()}, flush=True)
    return rows


#: start-up contenders: label, backend, environment; the last is the JAX path with dltspec's compile cache off
STARTUP = [("numba", "numba", {}), ("jax", "jax", {}),
           ("jax, `DLTSPEC_XLA_CACHE=0`", "jax", {"DLTSPEC_XLA_CACHE": "0"})]


def startup_rows(data: Path, args) -> list[str]:
    """Cold start of each contender in empty caches of its own, then warm starts taking turns (median)."""
    rows = ["| backend | cold: empty caches | warm (median of runs taking turns) | peak RSS (warm run) | "
            "data set in memory | RSS / data |", "|---|---|---|---|---|---|"]
    spec = read_spec("logistic", data)
    splits = api.load_data(spec)
    data_bytes = sum(x.size * 4 + y.size * 4 for x, y in splits.arrays.values())  # float32 x, floatX labels
    with tempfile.TemporaryDirectory() as tmp:
        envs, cold, warm = [], [], [[] for _ in STARTUP]
        for i, (_label, backend, extra) in enumerate(STARTUP):
            folder = f"{tmp}/{i}"
            envs.append({**{k: v for k, v in os.environ.items() if k != "JAX_COMPILATION_CACHE_DIR"}, **extra,
                         "PYTENSOR_FLAGS": f"base_compiledir={folder}/pytensor",
                         "DLTSPEC_CACHE_DIR": f"{folder}/dltspec", "TMP_OUT": folder})
            os.makedirs(folder)
            cold.append(launch(backend, envs[-1], data)[0])
        for _ in range(1 if args.quick else 5):
            for i, (_label, backend, _extra) in enumerate(STARTUP):
                warm[i].append(launch(backend, envs[i], data))
    for (label, _backend, _extra), first, runs in zip(STARTUP, cold, warm):
        ready = sorted(w[0] for w in runs if w[0] is not None)
        failed = len(runs) - len(ready)
        rss = max(w[1] for w in runs) * 1024
        warm_cell = (f"{statistics.median(ready):.1f} s ({ready[0]:.1f}-{ready[-1]:.1f})" if ready else "")
        warm_cell += f"{'; ' if ready else ''}{failed} failed" if failed else ""
        rows.append(f"| {label} | {'failed' if first is None else f'{first:.1f} s'} | {warm_cell} | "
                    f"{rss / 2**20:.0f} MiB | {data_bytes / 2**20:.0f} MiB | {rss / data_bytes:.2f} |")
        print(rows[-1], flush=True)
    return rows


def rewrite_results(section: list[str]) -> None:
    rewrite_section(BEGIN, END, section)


def vector_isa(cpuinfo: list[str]) -> str:
    """The CPU's widest vector and matrix instructions (``/proc/cpuinfo``'s ``flags``, or ``Features`` on Arm),
    for example ``AVX-512 and AMX`` or ``AVX2``: the kernels of XLA, oneDNN and OpenBLAS gain unequally from
    them, so the ratios of one machine need not hold on another."""
    flags = set(next((line.split(":", 1)[1].split() for line in cpuinfo
                      if line.startswith(("flags", "Features"))), []))
    found = [name for flag, name in (("avx512f", "AVX-512"), ("amx_tile", "AMX"), ("sve", "SVE")) if flag in flags]
    widest = next((name for flag, name in (("avx2", "AVX2"), ("asimd", "NEON")) if flag in flags), "no AVX2 or NEON")
    return " and ".join(found) if found else widest


def machine() -> str:
    import jax
    import pytensor
    import torch

    info = Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").exists() else []
    cpu = next((line.split(":", 1)[1].strip() for line in info if line.startswith("model name")), platform.processor())
    return (f"{cpu} ({vector_isa(info)}), {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}; Python "
            f"{platform.python_version()}, numpy {np.__version__}, pytensor {pytensor.__version__}, "
            f"jax {jax.__version__}, torch {torch.__version__}, dltspec {dltspec.__version__}")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data", help="directory of mnist.pkl.gz")
    p.add_argument("--epochs", type=int, default=5, help="timed epochs after the warm-up (default 5)")
    p.add_argument("--rounds", type=int, default=3, help="turns of the contenders, a process each (default 3)")
    p.add_argument("--quick", action="store_true", help="smoke run: 1,000 examples, 1 timed epoch, 1 round; "
                   "does not rewrite RESULTS.md")
    p.add_argument("--child", nargs="+", metavar=("CONTENDER", "MODEL"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.quick:
        args.epochs, args.rounds = 1, 1
    if args.child:
        contender, model, *overrides = args.child
        print(f"seconds {contender_seconds(contender, model, overrides, args.data, args.epochs, args.quick)!r}")
        return 0
    began = time.perf_counter()
    section = ["## CPU", "", f"Machine: {machine()}.", "",
               f"### Seconds per MNIST epoch (median of {args.epochs} after a warm-up epoch; each contender in "
               f"a process of its own, taking turns, median of {args.rounds} rounds)", "",
               *epoch_rows(args.data, args), "",
               "### Start-up and memory: `dltspec run specs/logistic_sgd.dlt`, one epoch", "",
               "Start-up is from launching the command to its first training step (goal: ≤ 10 s cold, "
               "≤ 3 s warm); peak RSS against the data set as dltspec holds it (goal: ≤ 2.5×).", "",
               *startup_rows(args.data, args), "",
               f"Whole script: {time.perf_counter() - began:.0f} s (`python bench/cpu_epoch.py`)."]
    if args.quick:
        print("\n".join(section))
    else:
        rewrite_results(section)
        print(f"rewrote the CPU section of {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
