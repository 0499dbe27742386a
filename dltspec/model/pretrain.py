"""Layer-wise unsupervised pre-training: the tutorials' denoising autoencoders (dA, SdA) and RBMs (RBM, DBN).

One class per kind (:data:`PRETRAININGS`), each owning what the layer it trains adds (its extra
parameters and state), its cost and the cost it reports. A pre-training *phase* trains one hidden
layer: its input is the output of the layers before it (their deterministic graph, with the values
earlier phases left), its ``W`` and ``b`` are the layer's own, which the fine-tuning then starts
from. :func:`phase_graph` is that phase as a :class:`~dltspec.model.graph.Graph`, which every backend
compiles as it compiles a training step: the monitored cost is the graph's ``cost`` (summed per epoch
by the program), the update rule plain SGD at the pre-training's ``learning_rate``, the random draws
(corruption masks, Gibbs samples) counter-based hashes of the step count ``optimizer.t``
(:func:`~dltspec.model.layers.counter_uniform`), so a phase is the same on every backend and after a resume.

Nothing here imports numpy or PyTensor at module level: ``dltspec check`` reads the phases through
:func:`pretrained_layers` and :func:`phase_rules`.
"""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import ClassVar

from dltspec.model.layers import Dense, Layer, counter_uniform, flat

#: activations whose outputs are in [0, 1]: what a cross-entropy reconstruction and binary units need
UNIT_INTERVAL = ("sigmoid", "hard_sigmoid")


def pretrained_layers(layers: list[Layer]) -> list[int]:
    """The places of the layers a ``pretrain`` block trains: every hidden dense layer, in order."""
    return [i for i, layer in enumerate(layers) if isinstance(layer, Dense)]


def corruption_levels(block: dict, n: int) -> list[float]:
    """One corruption level per pre-trained layer (a single number applies to all)."""
    levels = block.get("corruption", 0.0)
    return list(levels) if isinstance(levels, list) else [levels] * n


def salt_of(block: dict, phase: int, draw: int = 0) -> int:
    """The hash salt of a phase's ``draw``-th random draw (within 2**40: the hash masks it to 32 bits)."""
    return (block.get("seed", 0) * 1_000_003 + phase * 1009 + draw * 7919 + 0x5DA) % (1 << 40)


@dataclass(frozen=True)
class Extra:
    """A shared variable a phase adds: trained (a bias) or carried state (a persistent chain)."""

    name: str
    shape: tuple
    trained: bool


class Pretraining:
    """A pre-training kind. Subclasses set ``kind`` and implement :meth:`extras` and :meth:`costs`."""

    kind: ClassVar[str]

    def __init__(self, block: dict, phase: int, layer: Dense, n_phases: int):
        self.block, self.phase, self.layer, self.n_phases = block, phase, layer, n_phases

    def extras(self, n_visible: int, n_hidden: int, batch_size: int) -> list[Extra]:
        raise NotImplementedError

    def costs(self, v, W, b, extra: dict, t):
        """``(cost to differentiate, cost to report, {state variable: its new value})`` for the minibatch ``v``."""
        raise NotImplementedError

    def reconstruction(self, v, W, b, extra: dict):
        """The minibatch's mean cross-entropy of its mean-field reconstruction (no corruption, no sampling):
        ``-mean sum(v log z + (1 - v) log(1 - z))``, ``z = sigmoid(s(v W + b) W^T + c)``, ``c`` the visible bias.
        What the phase's program evaluates (its ``errors``): it reads no random draw."""
        import pytensor.tensor as pt

        from dltspec.model.activations import activate

        visible_bias = next(value for name, value in extra.items() if name.endswith((".b_prime", ".vbias")))
        y = activate(self.layer.activation, pt.dot(v, W) + b, self.layer.leak)
        return pt.mean(-cross_entropy(v, pt.dot(y, W.T) + visible_bias))

    def draw(self, like, t, i: int):
        return counter_uniform(like, t, salt_of(self.block, self.phase, i))


def cross_entropy(v, z_pre):
    """``sum(v log z + (1 - v) log(1 - z), axis=1)`` with ``z = sigmoid(z_pre)`` (log-sigmoids: finite where z
    rounds to 0 or 1)."""
    import pytensor.tensor as pt

    return pt.sum(v * -pt.softplus(-z_pre) + (1 - v) * -pt.softplus(z_pre), axis=1)


class Denoising(Pretraining):
    """A denoising autoencoder with tied weights (Vincent et al. 2008; the tutorial's ``dA``).

    ``x~ = x * mask`` (each input kept with probability ``1 - corruption``), ``y = s(x~ W + b)`` (``s`` the
    layer's activation), ``z = sigmoid(y W^T + b')``; the cost is the minibatch's mean of
    ``-sum(x log z + (1 - x) log(1 - z))`` (``cross_entropy``) or of ``sum((x - z)^2)`` (``squared_error``).
    ``b'`` (``<layer>.b_prime``) starts at zero; the cost reported is the one trained on.
    """

    kind: ClassVar[str] = "denoising"

    @property
    def corruption(self) -> float:
        return corruption_levels(self.block, self.n_phases)[self.phase]

    def extras(self, n_visible, n_hidden, batch_size):
        return [Extra(f"{self.layer.name}.b_prime", (n_visible,), True)]

    def costs(self, v, W, b, extra, t):
        import pytensor.tensor as pt

        from dltspec.model.activations import activate

        corrupted = v if not self.corruption else pt.switch(pt.ge(self.draw(v, t, 0), self.corruption), v, 0)
        y = activate(self.layer.activation, pt.dot(corrupted, W) + b, self.layer.leak)
        z_pre = pt.dot(y, W.T) + extra[f"{self.layer.name}.b_prime"]
        if self.block.get("cost", "cross_entropy") == "squared_error":
            cost = pt.mean(pt.sum(pt.sqr(v - pt.sigmoid(z_pre)), axis=1))
        else:
            cost = pt.mean(-cross_entropy(v, z_pre))
        return cost, cost, {}


class RBM(Pretraining):
    """A binary RBM trained by contrastive divergence (CD-k, Hinton 2002) or persistent CD (PCD-k, Tieleman 2008).

    ``W`` and the hidden bias ``b`` are the layer's; the visible bias ``<layer>.vbias`` starts at zero.
    The free energy is ``F(v) = -v vbias - sum(softplus(v W + b))``; a Gibbs step samples
    ``h ~ sigmoid(v W + b)``, then ``v ~ sigmoid(h W^T + vbias)``. The update is SGD on
    ``mean F(v0) - mean F(v_k)``, ``v_k`` the end of the chain, held constant (the tutorial's
    ``consider_constant``): the chain starts at ``h ~ p(h | v0)``, or, persistent, where the last
    update's chain ended (``<layer>.persistent``, one chain per example, from zero).

    The cost reported is the tutorial's monitor: with persistent chains the pseudo-likelihood proxy
    ``n_visible * mean log sigmoid(F(x~i) - F(x))``, ``x = round(v0)`` and ``x~i`` it with bit ``i = t mod
    n_visible`` flipped; without, the reconstruction log-likelihood ``mean sum(v0 log z + (1 - v0) log(1 - z))``
    of the chain's last ``z = sigmoid(h W^T + vbias)``.
    """

    kind: ClassVar[str] = "rbm"

    def extras(self, n_visible, n_hidden, batch_size):
        extras = [Extra(f"{self.layer.name}.vbias", (n_visible,), True)]
        if self.block.get("persistent"):
            extras.append(Extra(f"{self.layer.name}.persistent", (batch_size, n_hidden), False))
        return extras

    def costs(self, v, W, b, extra, t):
        import pytensor
        import pytensor.tensor as pt
        from pytensor.gradient import disconnected_grad

        vbias = extra[f"{self.layer.name}.vbias"]
        floatX = pytensor.config.floatX
        draws = iter(range(1, 1 << 20))

        def sample(mean):
            return pt.cast(pt.lt(self.draw(mean, t, next(draws)), mean), floatX)

        def free_energy(x):
            return -pt.dot(x, vbias) - pt.sum(pt.softplus(pt.dot(x, W) + b), axis=1)

        persistent = extra.get(f"{self.layer.name}.persistent")
        h = persistent if persistent is not None else sample(pt.sigmoid(pt.dot(v, W) + b))
        for _ in range(self.block.get("k", 1)):
            v_pre = pt.dot(h, W.T) + vbias
            v_k = sample(pt.sigmoid(v_pre))
            h = sample(pt.sigmoid(pt.dot(v_k, W) + b))
        chain_end = disconnected_grad(v_k)
        cost = pt.mean(free_energy(v)) - pt.mean(free_energy(chain_end))
        if persistent is None:
            return cost, pt.mean(cross_entropy(v, v_pre)), {}
        x = pt.round(v)
        bit = pt.cast(t, "int64") % v.shape[1]
        flipped = pt.set_subtensor(x[:, bit], 1 - x[:, bit])
        n_visible = pt.cast(v.shape[1], floatX)
        monitor = pt.mean(n_visible * pt.log(pt.sigmoid(free_energy(flipped) - free_energy(x))))
        return cost, monitor, {persistent: h}


#: pre-training kind -> class (the schema's pretrain kinds name the same, by test)
PRETRAININGS: dict[str, type[Pretraining]] = {cls.kind: cls for cls in (Denoising, RBM)}


@dataclass(frozen=True)
class Problem:
    """What is wrong with a pre-training: a code, a message, and where (a key of the pretrain block, or the
    place of the layer it concerns)."""

    code: str
    message: str
    key: str | None = None
    layer: int | None = None


def phase_rules(block: dict, layers: list[Layer]) -> list[Problem]:
    """What is wrong with pre-training ``layers`` as ``block`` says."""
    places = pretrained_layers(layers)
    if not places:
        others = sorted({layer.kind for layer in layers} - {"softmax", "dropout"})
        return [Problem("DLT316", "nothing to pre-train: a pretrain block trains the classifier's hidden dense layers, "
                        "and this classifier has none" + (f" (its {', '.join(others)} layers cannot be pre-trained)"
                                                          if others else ""))]
    out = []
    levels = block.get("corruption")
    if isinstance(levels, list) and len(levels) != len(places):
        out.append(Problem("DLT316", f"corruption has {len(levels)} level(s) for {len(places)} pre-trained layer(s) "
                           f"({', '.join(layers[i].name for i in places)}): give one per layer, or one number for all",
                           "corruption"))
    if block["kind"] == "denoising" and block.get("cost", "cross_entropy") != "cross_entropy":
        return out
    for i in places:
        layer = layers[i]
        if block["kind"] == "rbm" and layer.activation not in UNIT_INTERVAL:
            out.append(Problem("DLT317", f"{layer.name} is a {layer.activation} layer: an RBM's hidden units are "
                               "binary, sampled from a sigmoid; make its activation sigmoid", layer=i))
        before = next((j for j in reversed(range(i)) if getattr(layers[j], "activation", None)), None)
        if block["kind"] == "denoising" and before is not None and layers[before].activation not in UNIT_INTERVAL:
            name, activation = layers[before].name, layers[before].activation
            out.append(Problem("DLT317", f"{layer.name}'s input is the output of {name}, a {activation} layer, "
                               f"outside [0, 1]: a cross-entropy reconstruction needs inputs in [0, 1] (make {name} "
                               "sigmoid, or use cost = squared_error)", layer=before))
    return out


def phase_graph(spec, n_in: int, n_out: int, x, y, phase: int):
    """Pre-training phase ``phase`` of ``spec`` (its ``phase``-th pre-trained layer) as a
    :class:`~dltspec.model.graph.Graph` over the minibatch ``x`` (``y`` is not read).

    Its parameters are every layer's up to the trained one (those before it pass through unchanged)
    and the phase's extras; its state the step count and the phase's carried state.
    """
    import numpy as np
    import pytensor

    from dltspec.model import shapes
    from dltspec.model.graph import Graph
    from dltspec.model.layers import shared_param
    from dltspec.model.networks import Model
    from dltspec.model.updates import OPTIMIZERS, Step

    block = spec.data["pretrain"]
    network = shapes.network(spec.data, n_in, n_out)
    places = pretrained_layers(network.layers)
    place = places[phase]
    layer = network.layers[place]
    shapes_by_layer = network.shapes()
    values = network.initial_values()
    kept = [p for lyr, shape, _ in shapes_by_layer[:place + 1] for p in lyr.param_shapes(shape)]
    shared = {p.name: shared_param(values[p.name], p.name) for p in kept}
    v = network.output(x, shared, deterministic=True, upto=place)
    (n_visible,) = flat(shapes_by_layer[place][1])
    kind = PRETRAININGS[block["kind"]](block, phase, layer, len(places))
    batch_size = spec.block("optimizer")["batch_size"]
    extras = kind.extras(n_visible, layer.units, batch_size)
    extra = {e.name: pytensor.shared(np.zeros(e.shape, dtype=pytensor.config.floatX), name=e.name, shape=e.shape)
             for e in extras}
    step = Step({"kind": "sgd", "learning_rate": block["learning_rate"]})
    t = step.t
    W, b = shared[f"{layer.name}.W"], shared[f"{layer.name}.b"]
    cost, monitor, carried = kind.costs(v, W, b, extra, t)
    trained = [W, b] + [extra[e.name] for e in extras if e.trained]
    rule = OPTIMIZERS["sgd"](cost, trained, {"learning_rate": block["learning_rate"]}, step)
    params = [(p.name, shared[p.name]) for p in kept] + [(e.name, extra[e.name]) for e in extras if e.trained]
    updates = OrderedDict((p, rule.updates.get(p, p)) for _, p in params)  # the layers before pass through
    state = list(rule.state) + [extra[e.name] for e in extras if not e.trained]
    for s in state:
        updates[s] = carried[s] if s in carried else rule.updates[s]
    model = Model(monitor, params, [], network)
    return Graph(x, y, model, monitor, updates, state, kind.reconstruction(v, W, b, extra), rule.hyper)


def n_phases(spec) -> int:
    """How many pre-training phases ``spec`` has (0 without a ``pretrain`` block)."""
    if "pretrain" not in spec.data:
        return 0
    from dltspec.model import shapes

    return len(pretrained_layers(shapes.network(spec.data).layers))


def phase_spec(spec, phase: int):
    """``spec`` as the program of pre-training phase ``phase``: its optimizer the pre-training's plain SGD and
    batch size, no schedule or penalties, and ``phase`` set (what :func:`dltspec.model.graph.symbolic` reads).
    Every backend compiles it as it compiles a training step; it is cached under its own key."""
    import dataclasses

    block = spec.data["pretrain"]
    data = {k: v for k, v in spec.data.items() if k not in ("schedule", "regularizer", "sweep")}
    data["optimizer"] = {"kind": "sgd", "learning_rate": block["learning_rate"], "batch_size": block["batch_size"]}
    data["phase"] = phase
    return dataclasses.replace(spec, data=data)


def gibbs_chains(W, hbias, vbias, start, n_samples: int, steps: int, seed: int = 123):
    """The RBM tutorial's sampling (numpy, float64): from the visible units ``start`` (one chain per row),
    ``n_samples`` times run ``steps`` Gibbs steps (``h ~ sigmoid(v W + hbias)``, ``v ~ sigmoid(h W^T + vbias)``)
    and keep the last step's visible means. Returns ``(n_samples, n_chains, n_visible)``; the draws come from
    ``RandomState(seed)``."""
    import numpy as np

    rng = np.random.RandomState(seed)
    W, hbias, vbias = (np.asarray(a, np.float64) for a in (W, hbias, vbias))
    sigmoid = lambda z: 1.0 / (1.0 + np.exp(-z))  # noqa: E731
    v, out = np.asarray(start, np.float64), []
    for _ in range(n_samples):
        for _ in range(steps):
            h = (rng.uniform(size=(len(v), W.shape[1])) < sigmoid(v @ W + hbias)).astype(np.float64)
            v_mean = sigmoid(h @ W.T + vbias)
            v = (rng.uniform(size=v_mean.shape) < v_mean).astype(np.float64)
        out.append(v_mean)
    return np.stack(out)
