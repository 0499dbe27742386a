"""A trained classifier as an ONNX graph: the forward pass of prediction, layer by layer.

The graph's input ``input`` is float32 ``[N, n_in]``, the rows as the data set gives them (MNIST:
784 values in [0, 1]); its outputs are ``probabilities`` (float32 ``[N, n_out]``, what ``dltspec
predict`` computes) and ``class`` (int64 ``[N]``, their argmax). Each layer kind has one emitter in
:data:`EMITTERS`, ``(graph, value, layer, input_shape, params) -> value``, and each activation one in
:data:`ACTIVATIONS`; a kind or activation without one is DLT507, never a wrong graph. Between layers a
value is flat ``[N, features]`` or an image ``[N, channels, height, width]`` (NCHW, the order of the
flat rows: channel, row, column); an emitter asks for the layout it needs (:meth:`Value.flat`,
:meth:`Value.image`). Dropout is the identity, as at prediction. A convolution is a true one (the
kernel flipped, as Theano's ``conv2d``): ONNX ``Conv`` is a cross-correlation, so its weights are the
kernels flipped.

The model is checked with ``onnx.checker`` (and its shapes inferred) before it is returned.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from dltspec.export.trained import ExportError, Trained

#: the opset the graph is written for (onnxruntime 1.17 and later run it), and the IR version that goes with it
OPSET, IR_VERSION = 17, 8
FLOAT = np.float32


@dataclass
class Graph:
    """The nodes and initializers of the graph being built, with names made unique."""

    nodes: list = field(default_factory=list)
    initializers: list = field(default_factory=list)
    used: set = field(default_factory=set)

    def fresh(self, base: str) -> str:
        name, i = base, 1
        while name in self.used:
            name, i = f"{base}_{i}", i + 1
        self.used.add(name)
        return name

    def constant(self, name: str, array: np.ndarray) -> str:
        """An initializer holding ``array``; its name."""
        from onnx import numpy_helper

        name = self.fresh(name)
        self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(array), name))
        return name

    def node(self, op: str, inputs: list[str], name: str, **attributes) -> str:
        """A node ``op(inputs)`` with one output named after ``name``; that output's name."""
        from onnx import helper

        output = self.fresh(name)
        self.nodes.append(helper.make_node(op, inputs, [output], name=output, **attributes))
        return output


@dataclass(frozen=True)
class Value:
    """A tensor of the graph: its name, and its per-example shape (one number: flat; three: an image)."""

    name: str
    shape: tuple

    def flat(self, g: Graph, where: str) -> Value:
        """As ``[N, features]``."""
        if len(self.shape) == 1:
            return self
        size = int(np.prod(self.shape))
        return Value(g.node("Flatten", [self.name], f"{where}.flatten", axis=1), (size,))

    def image(self, g: Graph, shape: tuple, where: str) -> Value:
        """As ``[N, channels, height, width]`` of ``shape``: flat rows in (channel, row, column) order reshaped."""
        if len(self.shape) == 3:
            return self
        dims = g.constant(f"{where}.image_shape", np.array([-1, *shape], dtype=np.int64))
        return Value(g.node("Reshape", [self.name, dims], f"{where}.image"), tuple(shape))


def param(g: Graph, params: dict, name: str, array: np.ndarray | None = None) -> str:
    """The parameter ``name`` (or ``array`` made from it) as a float32 initializer."""
    return g.constant(name, np.asarray(params[name] if array is None else array, dtype=FLOAT))


# -- activations: (graph, input name, layer) -> output name ---------------------------------------------------

def _unary(op: str) -> Callable:
    return lambda g, x, layer: g.node(op, [x], f"{layer.name}.{op.lower()}")


#: activation name -> its emitter (the model's activations, :data:`dltspec.model.activations.ACTIVATIONS`)
ACTIVATIONS: dict[str, Callable] = {
    "tanh": _unary("Tanh"),
    "sigmoid": _unary("Sigmoid"),
    "relu": _unary("Relu"),
    "softplus": _unary("Softplus"),
    "linear": lambda g, x, layer: x,
    "leaky_relu": lambda g, x, layer: g.node("LeakyRelu", [x], f"{layer.name}.leaky_relu", alpha=float(layer.leak)),
}


def activation(g: Graph, x: str, layer, place: int) -> str:
    """``layer.activation`` applied to ``x``; DLT507 for an activation without an emitter."""
    if layer.activation not in ACTIVATIONS:
        raise unexpressible(f"activation {layer.activation} of {layer.name} ({layer.kind})", place)
    return ACTIVATIONS[layer.activation](g, x, layer)


# -- layers: (graph, value, layer, input shape, params, place) -> value -----------------------------------------

def affine(g: Graph, x: Value, layer, params: dict) -> str:
    """``x W + b`` of a dense product (``W`` of ``(fan_in, width)``)."""
    product = g.node("MatMul", [x.flat(g, layer.name).name, param(g, params, f"{layer.name}.W")],
                     f"{layer.name}.matmul")
    return g.node("Add", [product, param(g, params, f"{layer.name}.b")], f"{layer.name}.add")


def dense(g, x, layer, shape, params, place):
    """``activation(x W + b)``."""
    return Value(activation(g, affine(g, x, layer, params), layer, place), (layer.units,))


def softmax(g, x, layer, shape, params, place):
    """``softmax(x W + b)`` over the classes."""
    return Value(g.node("Softmax", [affine(g, x, layer, params)], f"{layer.name}.softmax", axis=1), (layer.units,))


def maxout(g, x, layer, shape, params, place):
    """``max_k (x W + b)[:, unit, k]``: the ``units * pieces`` columns as ``[N, units, pieces]``, maxed over pieces."""
    pieces = g.constant(f"{layer.name}.pieces_shape", np.array([-1, layer.units, layer.pieces], dtype=np.int64))
    grouped = g.node("Reshape", [affine(g, x, layer, params), pieces], f"{layer.name}.pieces")
    return Value(g.node("ReduceMax", [grouped], f"{layer.name}.max", axes=[2], keepdims=0), (layer.units,))


#: pooling mode -> its ONNX operator (no padding: a border that fills no window is left out, as the model does)
POOLS = {"max": "MaxPool", "mean": "AveragePool"}


def pooled(g: Graph, x: str, layer, mode: str, size: int, stride: int, place: int) -> str:
    if mode not in POOLS:
        raise unexpressible(f"{mode} pooling of {layer.name} ({layer.kind})", place)
    return g.node(POOLS[mode], [x], f"{layer.name}.pool", kernel_shape=[size, size], strides=[stride, stride])


def conv(g, x, layer, shape, params, place):
    """``activation(pool(conv2d(x, W)) + b)``: a true convolution (``W`` flipped for ONNX's cross-correlation)."""
    from dltspec.model.layers import PADDINGS

    image = x.image(g, shape, layer.name)
    W = np.asarray(params[f"{layer.name}.W"])[:, :, ::-1, ::-1]
    ph, pw = (PADDINGS[layer.padding](k) for k in layer.kernel)
    z = g.node("Conv", [image.name, param(g, params, f"{layer.name}.W", W)], f"{layer.name}.conv",
               kernel_shape=list(layer.kernel), strides=[layer.stride] * 2, pads=[ph, pw, ph, pw])
    if layer.pool > 1:
        z = pooled(g, z, layer, layer.pool_mode, layer.pool, layer.pool, place)
    b = param(g, params, f"{layer.name}.b", np.asarray(params[f"{layer.name}.b"]).reshape(-1, 1, 1))
    z = g.node("Add", [z, b], f"{layer.name}.add")
    return Value(activation(g, z, layer, place), tuple(layer.output_shape(shape)))


def pool(g, x, layer, shape, params, place):
    """Max or mean over ``size x size`` windows ``stride`` apart, per channel."""
    image = x.image(g, shape, layer.name)
    return Value(pooled(g, image.name, layer, layer.mode, layer.size, layer.step, place),
                 tuple(layer.output_shape(shape)))


def dropout(g, x, layer, shape, params, place):
    """The identity: dropout only acts in training."""
    return x


#: layer kind -> its emitter (the model's kinds, :data:`dltspec.model.layers.LAYERS`)
EMITTERS: dict[str, Callable] = {"dense": dense, "softmax": softmax, "maxout": maxout, "conv": conv, "pool": pool,
                                 "dropout": dropout}


def unexpressible(what: str, place: int) -> ExportError:
    return ExportError("DLT507", f"the ONNX export cannot express {what}", ("layer", place),
                       notes=("--format npz and --format safetensors still export its parameters",))


def graph(trained: Trained):
    """The ONNX ``ModelProto`` of ``trained``'s forward pass, checked; DLT507 for a layer it cannot express."""
    import onnx
    from onnx import TensorProto, helper

    g = Graph(used={"input"})
    x = Value("input", (trained.n_in,))
    for place, layer, shape, _output in trained.layers():
        if layer.kind not in EMITTERS:
            raise unexpressible(f"a {layer.kind} layer ({layer.name})", place)
        x = EMITTERS[layer.kind](g, x, layer, shape, trained.params, place)
    probabilities = g.node("Identity", [x.flat(g, "output").name], "probabilities")
    label = g.node("ArgMax", [probabilities], "class", axis=1, keepdims=0)
    name = trained.metadata["dltspec.name"]
    body = helper.make_graph(
        g.nodes, name, [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", trained.n_in])],
        [helper.make_tensor_value_info(probabilities, TensorProto.FLOAT, ["N", trained.n_out]),
         helper.make_tensor_value_info(label, TensorProto.INT64, ["N"])], g.initializers)
    model = helper.make_model(body, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="dltspec",
                              producer_version=trained.metadata["dltspec.version"], ir_version=IR_VERSION,
                              doc_string=f"dltspec classifier {name}: P(class | input) and its argmax")
    helper.set_model_props(model, trained.metadata)
    onnx.checker.check_model(model, full_check=True)
    return model


def serialized(trained: Trained) -> bytes:
    """The ONNX file's bytes (:func:`graph`)."""
    return graph(trained).SerializeToString()
