"""An independent PyTorch implementation of the tutorial's LeNet (convolutional_mlp.py), to compare
dltspec's `specs/lenet.dlt` with: same initialisation (the same numpy RandomState(23455) draws, in the
tutorial's order), same data order (minibatches in order, no shuffling), lr 0.1, batch 500, float32.
Prints the validation error (%) after each epoch (the tutorial validates once per epoch here:
validation_frequency = min(100 minibatches, patience // 2)).

    DLTSPEC_DATA=../shared/data python bench/lenet_reference.py --epochs 2
    DLTSPEC_DATA=../shared/data dltspec run specs/lenet.dlt --set stopping.n_epochs=2   # the same, by dltspec

Theano's conv2d (the tutorial's) is a true convolution: the kernel is flipped. PyTorch's conv2d is a
cross-correlation, so the kernels are flipped here (`W.flip(2, 3)`) to compute the same function of
the same W.
"""
from __future__ import annotations

import argparse
import gzip
import os
import pickle
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F


def load_mnist(path: Path):
    with gzip.open(path, "rb") as f:
        return [(torch.tensor(np.asarray(x, np.float32)), torch.tensor(np.asarray(y, np.int64)))
                for x, y in pickle.load(f, encoding="latin1")]


def initial_params(seed: int = 23455, nkerns=(20, 50), poolsize=(2, 2)) -> dict[str, torch.Tensor]:
    """The tutorial's draws: layer0, layer1 (LeNetConvPoolLayer), layer2 (HiddenLayer), layer3 (zeros)."""
    rng = np.random.RandomState(seed)
    params = {}
    for i, filter_shape in enumerate([(nkerns[0], 1, 5, 5), (nkerns[1], nkerns[0], 5, 5)]):
        fan_in = np.prod(filter_shape[1:])
        fan_out = filter_shape[0] * np.prod(filter_shape[2:]) / np.prod(poolsize)
        W_bound = np.sqrt(6.0 / (fan_in + fan_out))
        params[f"conv{i}.W"] = rng.uniform(low=-W_bound, high=W_bound, size=filter_shape)
        params[f"conv{i}.b"] = np.zeros(filter_shape[0])
    n_in, n_out = nkerns[1] * 4 * 4, 500
    bound = np.sqrt(6.0 / (n_in + n_out))
    params["hidden0.W"] = rng.uniform(low=-bound, high=bound, size=(n_in, n_out))
    params["hidden0.b"] = np.zeros(n_out)
    params["output.W"], params["output.b"] = np.zeros((n_out, 10)), np.zeros(10)
    return {k: torch.tensor(v.astype(np.float32), requires_grad=True) for k, v in params.items()}


def p_y_given_x(p: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    a = x.view(-1, 1, 28, 28)
    for i in range(2):
        z = F.conv2d(a, p[f"conv{i}.W"].flip(2, 3))  # true convolution, as Theano's conv2d
        a = torch.tanh(F.max_pool2d(z, 2) + p[f"conv{i}.b"][None, :, None, None])
    h = torch.tanh(a.flatten(1) @ p["hidden0.W"] + p["hidden0.b"])
    return torch.softmax(h @ p["output.W"] + p["output.b"], dim=1)


def error(p, x, y, batch_size) -> float:
    with torch.no_grad():
        n = len(y) // batch_size
        return float(np.mean([(p_y_given_x(p, x[i * batch_size:(i + 1) * batch_size]).argmax(1)
                               != y[i * batch_size:(i + 1) * batch_size]).float().mean().item() for i in range(n)]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--n-train", type=int, default=None, help="use only the first N training examples")
    ap.add_argument("--data", default=os.environ.get("DLTSPEC_DATA", "../shared/data").split(os.pathsep)[0])
    args = ap.parse_args()
    torch.set_num_threads(os.cpu_count() or 1)
    (train_x, train_y), (valid_x, valid_y), (test_x, test_y) = load_mnist(Path(args.data) / "mnist.pkl.gz")
    train_x, train_y = train_x[:args.n_train], train_y[:args.n_train]
    batch_size, learning_rate = 500, 0.1
    p = initial_params()
    for epoch in range(1, args.epochs + 1):
        start = time.perf_counter()
        for i in range(len(train_y) // batch_size):
            xb, yb = train_x[i * batch_size:(i + 1) * batch_size], train_y[i * batch_size:(i + 1) * batch_size]
            cost = -torch.log(p_y_given_x(p, xb))[torch.arange(batch_size), yb].mean()
            grads = torch.autograd.grad(cost, list(p.values()))
            with torch.no_grad():
                for value, grad in zip(p.values(), grads):
                    value -= learning_rate * grad
        seconds = time.perf_counter() - start
        print(f"epoch {epoch}: validation error {error(p, valid_x, valid_y, batch_size) * 100:f} %, "
              f"test error {error(p, test_x, test_y, batch_size) * 100:f} % ({seconds:.1f} s of training)",
              flush=True)


if __name__ == "__main__":
    main()
