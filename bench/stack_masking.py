"""What a stack whose variants stop at different times should do: mask the stopped ones or shrink.

    DLTSPEC_DATA=../shared/data python bench/stack_masking.py          # logistic/20 on 10,000 MNIST examples

Times one chunk of 500 minibatches (the best of 5, in this process, one thread as a sweep worker trains) of a
stack of 8 logistic regressions: all 8 training; 4 training and 4 masked (``n_steps`` 0: their updates
discarded by ``where``); and a stack of the 4 that train alone, as a shrunk stack would hold them. Prints
the ratios; ``dltspec.training.stack.SHRINK_AT`` is set from them.
"""
from __future__ import annotations

import os

os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")

import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import dltspec  # noqa: E402
from dltspec import pipeline as api  # noqa: E402
from dltspec.backends import stack  # noqa: E402

SPEC = """\
dataset mnist { path = "mnist.pkl.gz"  n_train = 10000 }
classifier logistic { n_out = 10 }
loss nll
optimizer sgd { learning_rate = 0.01  batch_size = 20 }
stopping patience { n_epochs = 1  patience = 100000000 }
"""
STEPS = 500


def stack_of(n: int) -> stack.StackProgram:
    specs = [dltspec.read(text=SPEC, overrides=[f"optimizer.learning_rate={0.01 * (i + 1)}"]) for i in range(n)]
    splits = api.load_data(specs[0])
    graphs = [stack.symbolic(s, splits, "float32") for s in specs]
    from dltspec.backends.devices import device

    return stack.build_stack(specs, stack.described(graphs, list(range(n)), device(None)), lambda: graphs[0], splits)


def best_seconds(train, repeats: int = 5) -> float:
    train()  # compiles
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        train()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    eight, four = stack_of(8), stack_of(4)
    whole = best_seconds(lambda: eight.train_chunk([0] * 8, [STEPS] * 8))
    masked = best_seconds(lambda: eight.train_chunk([0] * 8, [STEPS] * 4 + [0] * 4))
    shrunk = best_seconds(lambda: four.train_chunk([0] * 4, [STEPS] * 4))
    print(f"a chunk of {STEPS} minibatches, logistic/20, one thread:")
    print(f"  8 of 8 training:             {whole:.4f} s")
    print(f"  4 of 8 training, 4 masked:   {masked:.4f} s")
    print(f"  a stack of the 4 (shrunk):   {shrunk:.4f} s  (masked / shrunk: {masked / shrunk:.2f}x)")


if __name__ == "__main__":
    main()
