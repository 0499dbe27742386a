"""The PyTorch program a PyTorch user would write for each tutorial model: the peer dltspec is timed against.

What it does, and why each choice is the fast, idiomatic one (bench/README.md says the same):

- the model is an ``nn.Sequential`` of ``nn.Linear`` (and, for LeNet, ``nn.Conv2d`` + ``nn.MaxPool2d``) and
  activation modules, its parameters copied from dltspec's initial values (LeNet's kernels flipped: Theano's
  ``conv2d`` is a true convolution, PyTorch's a cross-correlation), so that both train the same model from the
  same start and the first epoch's mean cost can be compared;
- the loss is ``F.cross_entropy`` on the logits (the fused log-softmax + NLL);
- the L2 penalty ``l2 * sum(W ** 2)`` is ``optim.SGD``'s ``weight_decay = 2 * l2``, in a parameter group of the
  weights (the tutorial does not decay the biases); an L1 term is added to the loss only where its weight is
  not zero (the tutorial MLP's L1 weight is 0.0: no term);
- the training split is one preloaded tensor, sliced per minibatch (a view, no copy); minibatches in order;
- ``opt.zero_grad(set_to_none=True)``, ``loss.backward()``, ``opt.step()``; the epoch's costs are summed on
  the device (``total += loss.detach()``), with no host synchronisation inside the epoch;
- ``compiled=True`` is the same program with the model under ``torch.compile`` (the default inductor backend),
  its compilation in the warm-up epoch, which is not timed.

Threads: PyTorch's defaults (intra-op threads = the cores), as a user runs it.
"""
from __future__ import annotations

import time

import numpy as np


def penalty_weights(spec) -> dict[str, float]:
    """``{"l1": w, "l2": w}`` for the spec's regularizers whose weight is not zero (summed per kind)."""
    out: dict[str, float] = {}
    for reg in spec.regularizers:
        if reg["weight"]:
            out[reg["kind"]] = out.get(reg["kind"], 0.0) + float(reg["weight"])
    return out


def network(spec, initial: dict, n_in: int):
    """The spec's model (logistic, mlp or lenet) as an ``nn.Sequential`` holding dltspec's initial values."""
    import torch
    from torch import nn

    block = spec.block("classifier")
    activation = {"tanh": nn.Tanh, "sigmoid": nn.Sigmoid, "relu": nn.ReLU}[block.get("activation", "tanh")]
    layers: list = []
    convs = sorted((k[:-2] for k in initial if k.startswith("conv") and k.endswith(".W")), key=lambda s: int(s[4:]))
    if convs:
        shape = initial[f"{convs[0]}.W"].shape
        side = int(round((n_in / shape[1]) ** 0.5))  # square images: MNIST 1x28x28
        layers.append(nn.Unflatten(1, (shape[1], side, side)))
        pool = block.get("pool", 2)
        for name in convs:
            W, b = initial[f"{name}.W"], initial[f"{name}.b"]
            conv = nn.Conv2d(W.shape[1], W.shape[0], W.shape[2:])
            with torch.no_grad():
                conv.weight.copy_(torch.from_numpy(np.ascontiguousarray(W[:, :, ::-1, ::-1])))
                conv.bias.copy_(torch.from_numpy(b))
            layers += [conv, nn.MaxPool2d(pool), activation()]  # tanh(pool(conv) + b) = tanh(pool(conv + b))
        layers.append(nn.Flatten())
    hidden = sorted((k[:-2] for k in initial if k.startswith("hidden") and k.endswith(".W")), key=lambda s: int(s[6:]))
    for name in hidden + ["output"]:
        W, b = initial[f"{name}.W"], initial[f"{name}.b"]
        linear = nn.Linear(*W.shape)
        with torch.no_grad():
            linear.weight.copy_(torch.from_numpy(np.ascontiguousarray(W.T)))
            linear.bias.copy_(torch.from_numpy(b))
        layers += [linear] + ([activation()] if name != "output" else [])
    return nn.Sequential(*layers)


def optimizer(spec, model):
    """``optim.SGD`` at the spec's learning rate; L2 as ``weight_decay`` on the weights alone."""
    import torch

    lr = spec.block("optimizer")["learning_rate"]
    l2 = penalty_weights(spec).get("l2")
    if not l2:
        return torch.optim.SGD(model.parameters(), lr=lr)
    weights = [p for name, p in model.named_parameters() if name.endswith("weight")]
    biases = [p for name, p in model.named_parameters() if not name.endswith("weight")]
    return torch.optim.SGD([{"params": weights, "weight_decay": 2 * l2}, {"params": biases}], lr=lr)


def torch_epochs(spec, splits, initial: dict, device: str = "cpu", n_epochs: int = 2,
                 compiled: bool = False) -> tuple[list[float], float]:
    """Seconds of each epoch of :func:`network` trained as a PyTorch user would (see the module's text), and
    the first epoch's mean cost."""
    import torch
    import torch.nn.functional as F

    dev = torch.device("cuda" if device == "gpu" else "cpu")
    x = torch.from_numpy(np.ascontiguousarray(splits.arrays["train"][0], dtype=np.float32)).to(dev)
    y = torch.from_numpy(np.asarray(splits.arrays["train"][1], dtype=np.int64)).to(dev)
    model = network(spec, initial, x.shape[1]).to(dev)
    opt = optimizer(spec, model)
    l1 = penalty_weights(spec).get("l1")
    weights = [p for name, p in model.named_parameters() if name.endswith("weight")]
    forward = torch.compile(model) if compiled else model
    bs = spec.block("optimizer")["batch_size"]
    n = len(y) // bs
    times, costs = [], []
    for _ in range(n_epochs):
        synchronize(dev)
        start = time.perf_counter()
        total = torch.zeros((), device=dev)
        for i in range(n):
            loss = F.cross_entropy(forward(x[i * bs:(i + 1) * bs]), y[i * bs:(i + 1) * bs])
            if l1:
                loss = loss + l1 * sum(w.abs().sum() for w in weights)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += loss.detach()
        synchronize(dev)
        times.append(time.perf_counter() - start)
        costs.append(float(total) / n)
    return times, costs[0]


def synchronize(dev) -> None:
    import torch

    if dev.type == "cuda":
        torch.cuda.synchronize()
