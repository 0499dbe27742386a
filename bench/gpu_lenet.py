"""The tutorial's LeNet (specs/lenet.dlt) on a GPU: one epoch of dltspec's JAX path (one dispatch per
epoch, every split resident on the device) against PyTorch eager (bench/peers.py: the same network,
initial parameters and minibatch order, as a PyTorch user writes it), then the full 200-epoch
reproduction with the JAX path against the tutorial's published 0.91 % / 0.92 %. Writes a Markdown
report to --out, line by line (a killed run leaves what it had).

    python3 bench/gpu_lenet.py --data .data --out $OUT/LENET.md                          # on a GPU machine
    python bench/gpu_lenet.py --data ../shared/data --device cpu --quick --out /tmp/l.md  # smoke run

An epoch's time is the median over the timed epochs after one warm-up epoch (which compiles), training
only, synchronised with the device at the end. --budget (seconds, default 200) bounds the script: the
full run is attempted only if its estimate (from the measured epoch) fits what is left.
"""
from __future__ import annotations

import argparse
import sys
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from gpu_epoch import ROOT, Report, card, dltspec_epochs, median_after_warmup, reproduction_row, versions  # noqa: E402
from peers import torch_epochs  # noqa: E402

import dltspec  # noqa: E402
from dltspec import api  # noqa: E402

SPEC = ROOT / "specs" / "lenet.dlt"
QUICK = ["dataset.n_train=2000", "dataset.n_valid=1000", "dataset.n_test=1000"]


def read_spec(data: Path, overrides=()) -> dltspec.Spec:
    return dltspec.read(SPEC, overrides=[f'dataset.path="{(data / "mnist.pkl.gz").resolve()}"', *overrides])


def epoch_row(report: Report, data: Path, args) -> float:
    report.add("## One epoch of LeNet, training only", "",
               f"Median of {args.epochs} epochs after one warm-up epoch. dltspec: one dispatch per epoch. "
               "PyTorch: eager, one Python step per minibatch. Same initial parameters and minibatch order; "
               "the first epoch's mean cost of both checks that they train the same model.", "",
               "| batch | minibatches | dltspec JAX s/epoch | PyTorch eager s/epoch | speed-up | "
               "validation pass (dltspec) | first-epoch mean cost dltspec / torch |", "|---|---|---|---|---|---|---|")
    spec = read_spec(data, QUICK if args.quick else [])
    splits = api.load_data(spec)
    ours, initial, our_cost, validation = dltspec_epochs(spec, splits, args.device, args.epochs + 1)
    per_epoch = median_after_warmup(ours)
    try:
        theirs, their_cost = torch_epochs(spec, splits, initial, args.device, args.epochs + 1)
        their_epoch = median_after_warmup(theirs)
        cells = f"{their_epoch:.4f} | {their_epoch / per_epoch:.1f}x", f"{their_cost:.5f}"
    except Exception:  # keep the dltspec figures
        cells = f"failed: {traceback.format_exc().splitlines()[-1]} | n/a", "n/a"
    bs = spec.block("optimizer")["batch_size"]
    report.add(f"| {bs} | {splits.size('train') // bs} | {per_epoch:.4f} (warm-up {ours[0]:.2f}) | {cells[0]} | "
               f"{validation * 1000:.1f} ms | {our_cost:.5f} / {cells[1]} |", "")
    return per_epoch


def reproduce(report: Report, data: Path, args, overrides: list[str]) -> None:
    reproduction_row(report, f"lenet {' '.join(overrides)}",
                     lambda: read_spec(data, (QUICK if args.quick else []) + overrides), args.device,
                     "validation 0.91 % at 17800, test 0.92 % (CPU); 0.91 % at 16400, test 0.93 % (GTX 480)")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, required=True, help="directory holding mnist.pkl.gz")
    p.add_argument("--out", type=Path, required=True, help="Markdown report to write")
    p.add_argument("--device", choices=("gpu", "cpu"), default="gpu")
    p.add_argument("--epochs", type=int, default=3, help="timed epochs after the warm-up (default 3)")
    p.add_argument("--quick", action="store_true", help="a smoke run: 2,000/1,000/1,000 examples, 1 timed epoch, "
                   "the reproductions cut to 2 epochs")
    p.add_argument("--budget", type=float, default=200, help="seconds the whole script may take (default 200)")
    args = p.parse_args(argv)
    if args.quick:
        args.epochs = 1
    began = time.perf_counter()
    report = Report(args.out)
    report.add("# dltspec's LeNet on JAX: epoch time and the tutorial's reproduction", "",
               f"Card: {card(args.device)}", "", f"Versions: {versions(args.device)}", "")
    per_epoch = epoch_row(report, args.data, args)
    report.add("## Reproduction with the JAX path", "",
               "| spec | best validation | test | epochs | best iteration | first validations (%) | "
               "training time | tutorial |", "|---|---|---|---|---|---|---|---|")
    reproduce(report, args.data, args, ["stopping.n_epochs=2"])
    estimate = per_epoch * 200 * 1.3 + 20  # 200 epochs, validation and test passes, compilation
    left = args.budget - (time.perf_counter() - began)
    if not args.quick and estimate < left:
        reproduce(report, args.data, args, [])
    else:
        report.add("", f"Full 200-epoch run skipped: estimated {estimate:.0f} s, {left:.0f} s left of --budget.")
    report.add("", f"Whole script: {time.perf_counter() - began:.0f} s.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
