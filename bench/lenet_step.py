"""Where LeNet's epoch goes on the JAX path: dltspec's training dispatch against its validation pass.

    python bench/lenet_step.py --data ../shared/data      # about 30 s on 2 cores
    XLA_FLAGS=... DLTSPEC_XLA_CACHE=0 python bench/lenet_step.py --data ../shared/data

One process: ``specs/lenet.dlt`` (20 and 50 kernels of 5x5, 500 tanh units, minibatches of 500) compiled by
dltspec's JAX path, then for --rounds rounds, taking turns, one ``train_chunk`` of --steps minibatches and one
evaluation of the validation split (10,000 examples: 20 forward passes of 500). The medians and the fastest
round are printed, with the seconds per minibatch of each. To try XLA's options (for example its library
fusions, ``--xla_cpu_experimental_xnn_fusion_type=LIBRARY_FUSION_TYPE_DOT``), set ``XLA_FLAGS`` and turn
dltspec's executable cache off (``DLTSPEC_XLA_CACHE=0``): a cached executable was compiled without them.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import dltspec  # noqa: E402
from dltspec import api  # noqa: E402
from dltspec.diagnostics import DltspecError  # noqa: E402


def positive(text: str) -> int:
    """An argparse type: a whole number of at least 1."""
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, got {text!r}")
    return int(text)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data", help="directory of mnist.pkl.gz")
    p.add_argument("--rounds", type=positive, default=4, help="turns of the two passes (default 4)")
    p.add_argument("--steps", type=positive, default=10, help="minibatches in the timed training dispatch (default 10)")
    args = p.parse_args(argv)
    from dltspec.backends.jax_backend import build

    try:
        spec = dltspec.read(ROOT / "specs" / "lenet.dlt", overrides=[f'dataset.path="{args.data / "mnist.pkl.gz"}"'])
        splits = api.load_data(spec)
    except DltspecError as exc:
        print(f"lenet_step.py: {exc}", file=sys.stderr)
        return 2
    program = build(spec, splits, device_name="cpu")
    passes = {"training": lambda: program.train_chunk(0, args.steps), "validation": lambda: program.error("valid")}
    per = {"training": args.steps, "validation": program.n_batches["valid"]}
    for run in passes.values():
        run()  # compiles
    times = {name: [] for name in passes}
    for _ in range(args.rounds):
        for name, run in passes.items():
            start = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - start)
    print(f"LeNet, minibatches of {spec.block('optimizer')['batch_size']}, {args.rounds} rounds:")
    for name, ts in times.items():
        median = statistics.median(ts)
        print(f"  {name:10s} {per[name]:3d} minibatches: median {median:.3f} s (fastest {min(ts):.3f}), "
              f"{1000 * median / per[name]:.1f} ms a minibatch")
    return 0


if __name__ == "__main__":
    sys.exit(main())
