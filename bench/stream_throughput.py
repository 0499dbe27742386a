"""Training on data larger than the device memory budget: throughput and peak memory, streamed against resident.

    python bench/stream_throughput.py                       # 2 GB of float32 features, a 256 MB budget
    python bench/stream_throughput.py --gigabytes 0.5 --budget 64MB --no-write

Writes a synthetic data set of memory-mapped ``.npy`` files (MNIST-sized rows: 784 float32 features,
10 classes) into a temporary folder, then times one epoch of logistic regression (batch 600, JAX on
the CPU) in child processes: streamed, the whole set under the budget; and resident, the first rows
that fit the budget, all on the device. Each child reports examples/s over the epoch (compilation
excluded) and its peak RSS; the import floor (a child that only imports and compiles) is measured too.
Medians of --repeats children. Rewrites its section of bench/RESULTS.md. The issue's aim: at least
80 % of the resident throughput, peak RSS within budget + 200 MB.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
from results import publish  # noqa: E402

BEGIN, END = "<!-- stream:begin (bench/stream_throughput.py rewrites this section) -->", "<!-- stream:end -->"
N_IN, N_OUT, BATCH = 784, 10, 600
SPEC = """\
dataset npy {{ path = "{path}"  valid_size = 6000  n_train = {n_train} }}
classifier logistic {{ n_out = 10 }}
loss nll
optimizer sgd {{ learning_rate = 0.13  batch_size = 600 }}
stopping patience {{ n_epochs = 1 }}
"""

CHILD = r"""
import json, sys, time
import dltspec
from dltspec import api
spec = dltspec.read(text=sys.argv[1], base_dir=".")
budget = int(sys.argv[2]) if sys.argv[2] != "none" else None
measure = sys.argv[3] == "epoch"
training = api.compile_training(spec, backend="jax", device="cpu", budget=budget)
program = training.program
program.train_chunk(0, 1)  # compiles
n = program.n_batches["train"]
seconds = None
if measure:
    start = time.perf_counter()
    program.train_chunk(1, n)
    seconds = time.perf_counter() - start
# VmHWM, not ru_maxrss: Linux keeps ru_maxrss across exec, so a child would report its parent's peak
hwm = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:"))
print(json.dumps({"examples_per_s": n * 600 / seconds if seconds else None, "n_batches": n,
                  "streamed": program.stream is not None, "peak_rss": hwm * 1024}))
"""


def make_data(folder: Path, rows: int) -> None:
    """Random features and labels written straight to .npy files, a block at a time (never all in memory)."""
    rng = np.random.RandomState(0)
    x = np.lib.format.open_memmap(folder / "x_train.npy", mode="w+", dtype=np.float32, shape=(rows, N_IN))
    block = 50_000
    for start in range(0, rows, block):
        x[start:start + block] = rng.rand(min(block, rows - start), N_IN).astype(np.float32)
    x.flush()
    del x
    np.save(folder / "y_train.npy", rng.randint(0, N_OUT, rows).astype(np.int64))
    np.save(folder / "x_test.npy", rng.rand(6000, N_IN).astype(np.float32))
    np.save(folder / "y_test.npy", rng.randint(0, N_OUT, 6000).astype(np.int64))


def child(folder: Path, n_train: int, budget: int | None, what: str) -> dict:
    text = SPEC.format(path=folder, n_train=n_train)
    done = subprocess.run([sys.executable, "-c", CHILD, text, str(budget) if budget else "none", what],
                          capture_output=True, text=True, cwd=folder, timeout=3600)
    if done.returncode:
        raise RuntimeError(done.stderr)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    from dltspec.data.stream import parse_size

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--gigabytes", type=float, default=2.0, help="size of the training features (default 2)")
    p.add_argument("--budget", default="256MB")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--dir", type=Path, help="where to write the data (default: a temporary folder)")
    p.add_argument("--no-write", action="store_true")
    args = p.parse_args(argv)
    budget = parse_size(args.budget)
    rows = int(args.gigabytes * 1e9) // (N_IN * 4) // BATCH * BATCH + 6000
    fitting = (budget // (N_IN * 4 + 4) - 2 * 6000) // BATCH * BATCH  # resident: train + valid + test in the budget
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        folder = Path(tmp)
        make_data(folder, rows)
        size = (folder / "x_train.npy").stat().st_size
        print(f"data: {rows:,} rows, {size / 1e9:.2f} GB; budget {budget / 1e6:.0f} MB; resident run: "
              f"{fitting:,} rows", flush=True)
        runs = {"streamed": [], "resident": []}
        for k in range(args.repeats):
            runs["streamed"].append(child(folder, rows - 6000, budget, "epoch"))
            runs["resident"].append(child(folder, fitting, budget, "epoch"))
            print(f"repeat {k + 1}: " + ", ".join(f"{m} {r[-1]['examples_per_s']:,.0f} ex/s, peak RSS "
                                                   f"{r[-1]['peak_rss'] / 1e6:.0f} MB" for m, r in runs.items()),
                  flush=True)
        floor = child(folder, 2 * BATCH, budget, "imports")  # two minibatches of data: the floor
    assert all(r["streamed"] for r in runs["streamed"]) and not any(r["streamed"] for r in runs["resident"])
    rate = {m: statistics.median(r["examples_per_s"] for r in v) for m, v in runs.items()}
    rss = {m: statistics.median(r["peak_rss"] for r in v) for m, v in runs.items()}
    lines = [
        "## Data larger than the device memory (issue 6)", "",
        f"`python bench/stream_throughput.py --gigabytes {args.gigabytes:g} --budget {args.budget}`: "
        f"{size / 1e9:.2f} GB of memory-mapped float32 features ({rows - 6000:,} training rows of 784), "
        f"logistic regression, batch 600, JAX on the CPU ({os.cpu_count()} cores), one epoch, compilation "
        f"excluded; medians of {args.repeats} child processes. Resident: the first {fitting:,} rows, which fit "
        "the budget with validation and test.", "",
        "| run | examples/s | ratio | peak RSS |", "|---|---|---|---|",
        f"| resident ({fitting:,} rows) | {rate['resident']:,.0f} | 1.00 | {rss['resident'] / 1e6:.0f} MB |",
        f"| streamed ({rows - 6000:,} rows, {args.budget}) | {rate['streamed']:,.0f} | "
        f"{rate['streamed'] / rate['resident']:.2f} | {rss['streamed'] / 1e6:.0f} MB |",
        f"| imports and compilation only | | | {floor['peak_rss'] / 1e6:.0f} MB |", "",
        f"Peak RSS of the streamed run above the import floor: {(rss['streamed'] - floor['peak_rss']) / 1e6:.0f} MB "
        f"(budget {budget / 1e6:.0f} MB). The data was just written, so it comes from the page cache; from a "
        "cold disk the streamed run is bounded by the disk's read rate.", "",
    ]
    publish(BEGIN, END, lines, write=not args.no_write)
    return 0


if __name__ == "__main__":
    sys.exit(main())
