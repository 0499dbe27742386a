"""One pre-training epoch of the SdA's first layer (specs/sda.dlt: a 784 -> 1000 denoising autoencoder, corruption
0.1, batch size 1, learning rate 0.001), side by side in one run, each contender in a process of its own, taking
turns: dltspec's JAX path (many steps per dispatch), dltspec on PyTensor's Numba backend (one call per step, as
the tutorial's Theano function), and a straightforward PyTorch loop of the same layer (tied weights, the same
cross-entropy, plain SGD, preloaded tensors, one example per step, ``torch.set_num_threads`` left at its default).

    python bench/pretrain_epoch.py --data ../shared/data                 # --steps 5000 of the 50,000 of an epoch
    python bench/pretrain_epoch.py --data ../shared/data --steps 50000   # a whole epoch each

Reported: seconds per step (median of --rounds rounds, after a warm-up of 500 steps that is not timed)
and that times 50,000, the epoch; ratios against PyTorch.
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EPOCH = 50_000


def dltspec_contender(backend: str, steps: int) -> float:
    import dltspec
    from dltspec import api
    from dltspec.model.pretrain import phase_spec

    spec = dltspec.read(ROOT / "specs" / "sda.dlt")
    splits = api.load_data(spec)
    program = api.build_program(phase_spec(spec, 0), splits, backend, "float32", None)
    program.train_chunk(0, 500)  # compiles, warms up
    began = time.perf_counter()
    done = 500
    while done < 500 + steps:  # in chunks, as the run does (the JAX path: 2,000 steps per dispatch)
        n = min(2000, 500 + steps - done)
        program.train_chunk(done, n)
        done += n
    return (time.perf_counter() - began) / steps


def torch_contender(steps: int) -> float:
    import gzip
    import pickle

    import numpy as np
    import torch

    with gzip.open(Path(ARGS.data) / "mnist.pkl.gz", "rb") as f:
        (x, _), _, _ = pickle.load(f, encoding="latin1")
    x = torch.from_numpy(np.asarray(x, np.float32))
    rng = np.random.RandomState(89677)
    r = 4 * np.sqrt(6 / (784 + 1000))
    W = torch.tensor(rng.uniform(-r, r, (784, 1000)).astype(np.float32), requires_grad=True)
    b = torch.zeros(1000, requires_grad=True)
    b_prime = torch.zeros(784, requires_grad=True)
    optimizer = torch.optim.SGD([W, b, b_prime], lr=0.001)
    generator = torch.Generator().manual_seed(0)

    def step(i: int) -> None:
        v = x[i % len(x)].unsqueeze(0)
        corrupted = v * (torch.rand(v.shape, generator=generator) >= 0.1)
        y = torch.sigmoid(corrupted @ W + b)
        z_pre = y @ W.T + b_prime
        cost = torch.nn.functional.binary_cross_entropy_with_logits(z_pre, v, reduction="sum")
        optimizer.zero_grad(set_to_none=True)
        cost.backward()
        optimizer.step()

    for i in range(500):
        step(i)
    began = time.perf_counter()
    for i in range(500, 500 + steps):
        step(i)
    return (time.perf_counter() - began) / steps


def main() -> None:
    if ARGS.contender:
        seconds = torch_contender(ARGS.steps) if ARGS.contender == "torch" else dltspec_contender(ARGS.contender,
                                                                                                     ARGS.steps)
        print(json.dumps({"seconds_per_step": seconds}))
        return
    names = ["jax", "numba", "torch"]
    results = {n: [] for n in names}
    for _ in range(ARGS.rounds):
        for name in names:
            out = subprocess.run([sys.executable, __file__, "--data", ARGS.data, "--steps", str(ARGS.steps),
                                  "--contender", name], capture_output=True, text=True, check=True)
            results[name].append(json.loads(out.stdout.strip().splitlines()[-1])["seconds_per_step"])
    torch_step = statistics.median(results["torch"])
    print(f"SdA layer 0 pre-training (784 -> 1000, batch 1): {ARGS.steps} timed steps, {ARGS.rounds} round(s)")
    for name in names:
        step = statistics.median(results[name])
        print(f"  {name:6s} {step * 1e6:8.1f} us/step  {step * EPOCH:7.1f} s/epoch  {step / torch_step:5.2f}x PyTorch")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data"))
    parser.add_argument("--steps", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--contender", choices=["jax", "numba", "torch"], help=argparse.SUPPRESS)
    ARGS = parser.parse_args()
    main()
