"""Where the MLP's training epoch goes on the JAX path: dltspec's step against the same step written by hand in JAX.

    python bench/mlp_step.py --data ../shared/data      # about 30 s on 2 cores

One process, the contenders taking turns for --rounds rounds, one epoch of the tutorial MLP (784-500-10 tanh,
minibatches of 20, MNIST's 50,000 training examples: 2,500 steps in one dispatch) each turn; the median of the
rounds is printed. The contenders:

- ``dltspec``: ``specs/mlp.dlt`` compiled by dltspec's JAX path (``train_chunk`` over the epoch), the cost it
  reports including ``l2 * sum(W ** 2)`` as the tutorial's does;
- ``dltspec, no penalty``: the same spec without its regularizer blocks;
- ``hand JAX, cost with penalty``: the step written directly in JAX (``value_and_grad`` of the NLL plus the L2
  term, SGD in a ``fori_loop``), its reported cost the same as dltspec's;
- ``hand JAX, penalty carried``: the same step, the penalty's value computed from the updated weights and
  carried to the next step's cost (as dltspec's JAX path did from stop 33 to 35: faster on an AMD EPYC in this
  script, slower on an Intel Xeon; ``bench/RESULTS.md``);
- ``hand JAX, cost without penalty``: the same gradient (L2 included), the reported cost the NLL alone: what
  a PyTorch program with ``weight_decay`` computes.

The hand-written steps start from the same initial parameters and read the same device-resident minibatches.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from lenet_step import positive  # noqa: E402  (bench/, this script's folder, is on the path)

import dltspec  # noqa: E402
from dltspec import api  # noqa: E402
from dltspec.diagnostics import DltspecError  # noqa: E402


def dltspec_epoch(spec, splits):
    """A callable training one epoch through dltspec's JAX path, and the program."""
    from dltspec.backends.jax_backend import build

    program = build(spec, splits, device_name="cpu")
    n = program.n_batches["train"]
    return lambda: program.train_chunk(0, n), program


def hand_epoch(program, l2: float, lr: float, penalty: str):
    """One epoch of the same MLP step written by hand in JAX, on ``program``'s data and initial values;
    ``penalty`` in the reported cost: ``"computed"`` each step, ``"carried"`` from the update, or ``"none"``."""
    import jax
    import jax.numpy as jnp
    from jax import lax

    W, b, W2, b2 = program.params[:4]
    x, y = program.batches["train"]
    value = lambda p: l2 * (jnp.sum(p[0] ** 2) + jnp.sum(p[2] ** 2))  # noqa: E731

    def loss(p, xb, yb):
        W, b, W2, b2 = p
        z = jnp.tanh(xb @ W + b) @ W2 + b2
        nll = -jnp.mean(jax.nn.log_softmax(z)[jnp.arange(yb.shape[0]), yb])
        return nll + value(p), nll

    grad = jax.value_and_grad(loss, has_aux=True)

    @jax.jit
    def epoch(p, x, y):
        def body(i, carry):
            p, cost, carried = carry
            (total, nll), g = grad(p, x[i], y[i])
            new = tuple(a - lr * d for a, d in zip(p, g))
            if penalty == "carried":
                return new, cost + nll + carried, value(new)
            return new, cost + (total if penalty == "computed" else nll), carried

        with jax.default_matmul_precision("highest"):
            return lax.fori_loop(0, x.shape[0], body, (p, jnp.zeros((), jnp.float32), value(p)))

    return lambda: jax.block_until_ready(epoch((W, b, W2, b2), x, y))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data", help="directory of mnist.pkl.gz")
    p.add_argument("--rounds", type=positive, default=5, help="turns of the contenders (default 5)")
    args = p.parse_args(argv)
    base = f'dataset.path="{args.data / "mnist.pkl.gz"}"'
    try:
        spec = dltspec.read(ROOT / "specs" / "mlp.dlt", overrides=[base])
        text = "\n".join(line for line in (ROOT / "specs" / "mlp.dlt").read_text().splitlines()
                         if not line.startswith("regularizer"))
        bare = dltspec.read(text=text, overrides=[base])
        splits = api.load_data(spec)
    except DltspecError as exc:
        print(f"mlp_step.py: {exc}", file=sys.stderr)
        return 2
    l2 = sum(r["weight"] for r in spec.regularizers if r["kind"] == "l2")
    lr = spec.block("optimizer")["learning_rate"]
    with_penalty, program = dltspec_epoch(spec, splits)
    contenders = {"dltspec": with_penalty, "dltspec, no penalty": dltspec_epoch(bare, splits)[0],
                  "hand JAX, cost with penalty": hand_epoch(program, l2, lr, "computed"),
                  "hand JAX, penalty carried": hand_epoch(program, l2, lr, "carried"),
                  "hand JAX, cost without penalty": hand_epoch(program, l2, lr, "none")}
    for run in contenders.values():
        run()  # compiles
    times = {name: [] for name in contenders}
    for _ in range(args.rounds):
        for name, run in contenders.items():
            start = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - start)
    print(f"MLP 784-500-10, 2,500 minibatches of 20, median of {args.rounds} rounds (s per epoch):")
    for name, ts in times.items():
        print(f"  {name:32s} {statistics.median(ts):.3f}  ({', '.join(f'{t:.3f}' for t in ts)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
