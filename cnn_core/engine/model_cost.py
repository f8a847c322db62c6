"""What a Keras model costs, read from its config.json alone: parameters, weight bytes, FLOPs per image.

Keras allocates every weight while it rebuilds a model from its config, so a 45 KB file asking for
a Dense layer of 650,000 units costs gigabytes before anything can be checked on the model. This
module walks the config (Sequential or Functional, nested models included) from a known input
shape, computing each layer's output shape, parameters and multiply-adds the way Keras would, so a
caller can refuse a model before Keras sees it. Pure Python: no TensorFlow, no NumPy arrays.

Only the layers a small image classifier uses are understood; any other layer is refused with
`UserError`, since its cost cannot be known in advance. A layer's `build_config` (the input shape
Keras builds it with while loading) must agree with the shape computed here, otherwise a config
could ask Keras to build a layer far larger than the graph needs.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from cnn_core.engine.errors import UserError

Shape = tuple[int, ...]

# Activation names Keras accepts that really are element-wise activation functions. Anything else
# from keras.activations (serialize, get, deserialize) is a function but not an activation.
ACTIVATIONS = frozenset({
    "linear", "relu", "relu6", "sigmoid", "softmax", "tanh", "elu", "selu", "softplus", "softsign",
    "swish", "silu", "gelu", "exponential", "hard_sigmoid", "hard_silu", "hard_swish", "leaky_relu",
    "log_softmax", "mish", "log_sigmoid", "celu", "glu", "sparse_plus", "sparsemax", "squareplus",
    "tanh_shrink", "hard_tanh", "soft_shrink", "hard_shrink",
})
MODEL_CLASSES = ("Sequential", "Functional", "Model")
IDENTITY_LAYERS = frozenset({
    "Dropout", "SpatialDropout2D", "GaussianNoise", "GaussianDropout", "AlphaDropout", "ActivityRegularization",
    "Activation", "ReLU", "LeakyReLU", "ELU", "Softmax", "ThresholdedReLU", "Rescaling", "Identity",
})
MERGE_LAYERS = frozenset({"Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum"})
KNOWN_LAYERS = IDENTITY_LAYERS | MERGE_LAYERS | {
    "InputLayer", "Conv2D", "DepthwiseConv2D", "SeparableConv2D", "Dense", "MaxPooling2D", "AveragePooling2D",
    "GlobalAveragePooling2D", "GlobalMaxPooling2D", "Flatten", "Reshape", "BatchNormalization",
    "LayerNormalization", "PReLU", "ZeroPadding2D", "Cropping2D", "UpSampling2D", "Concatenate",
}
# Keras' own short names for the same layers.
ALIASES = {"Convolution2D": "Conv2D", "MaxPool2D": "MaxPooling2D", "AvgPool2D": "AveragePooling2D",
           "GlobalAvgPool2D": "GlobalAveragePooling2D", "GlobalMaxPool2D": "GlobalMaxPooling2D"}


class WrongInputShape(UserError):
    """The model declares another input shape than the one it will get."""

    def __init__(self, shape: Shape):
        self.shape = shape
        super().__init__(f"The model takes inputs of shape {shape}.")


@dataclass(frozen=True)
class ModelCost:
    """A model's size and compute, per image (FLOPs count a multiply-add as two)."""

    params: int
    weight_bytes: int
    flops: int
    layers: int
    largest_activation: int  # values in the biggest layer output for one image
    input_shape: Shape
    output_shape: Shape


def json_depth(text: str | bytes) -> int:
    """How deeply arrays and objects nest in a JSON text, found without recursion (or parsing).

    Python's json module recurses once per level, so a 334-byte text nested 100,000 deep raises
    RecursionError; check this first.
    """
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    # Brackets inside strings do not nest; drop the strings first (escaped quotes included).
    skeleton = re.sub(r'"(?:[^"\\]|\\.)*"', "", text)
    depth = deepest = 0
    for match in re.finditer(r"[\[\]{}]", skeleton):
        if match.group() in "[{":
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth -= 1
    return deepest


def _name(layer: dict) -> str:
    config = layer.get("config") if isinstance(layer.get("config"), dict) else {}
    return str(layer.get("name") or config.get("name") or layer.get("class_name") or "a layer")


def _int(value: Any, what: str, low: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise UserError(f"The model's config has {what} = {value!r}; it must be a whole number of at least {low}.")
    return value


def _pair(value: Any, what: str, low: int = 1) -> tuple[int, int]:
    if isinstance(value, int) and not isinstance(value, bool):
        return _int(value, what, low), _int(value, what, low)
    if isinstance(value, list | tuple) and len(value) == 2:
        return _int(value[0], what, low), _int(value[1], what, low)
    raise UserError(f"The model's config has {what} = {value!r}; it must be a number or a pair of numbers.")


def _shape(value: Any, what: str) -> Shape:
    """A shape without its batch dimension, from `[null, 28, 28, 1]`."""
    if not isinstance(value, list | tuple) or not value:
        raise UserError(f"The model's config has {what} = {value!r}, which is not a shape.")
    return tuple(_int(v, what) for v in value[1:])


def check_activation(value: Any, where: str) -> None:
    """Refuse an `activation` that is not an activation function (e.g. keras.activations.serialize)."""
    if value is None:
        return
    name = value
    if isinstance(value, dict):
        if value.get("class_name") != "function":
            return  # a serialised Keras object: checked by the module allow-list of the caller
        name = value.get("config")
    if not isinstance(name, str) or name not in ACTIVATIONS:
        raise UserError(
            f"The layer {where} uses {name!r} as its activation, which is not an activation function; "
            "use one such as 'relu' or 'softmax'."
        )


def _size(shape: Shape) -> int:
    return math.prod(shape)


def _image(shape: Shape, layer: str, kind: str) -> tuple[int, int, int]:
    if len(shape) != 3:
        raise UserError(f"The {kind} layer {layer} gets an input of shape {shape}; it needs height × width × channels.")
    return shape  # type: ignore[return-value]


def _conv_output(size: int, kernel: int, stride: int, dilation: int, padding: str, layer: str) -> int:
    if padding == "same":
        return -(-size // stride)
    if padding != "valid":
        raise UserError(f"The layer {layer} has padding {padding!r}; use 'valid' or 'same'.")
    span = dilation * (kernel - 1) + 1
    if span > size:
        raise UserError(f"The layer {layer} has a {kernel}×{kernel} window wider than its {size}-pixel input; "
                        "use a smaller kernel or 'same' padding.")
    return (size - span) // stride + 1


def _layer_cost(kind: str, config: dict, inputs: list[Shape], layer: str) -> tuple[Shape, int, int]:
    """(output shape, parameters, FLOPs per image) of one layer call."""
    if config.get("data_format", "channels_last") not in ("channels_last", None):
        raise UserError(f"The layer {layer} uses data_format {config.get('data_format')!r}; use channels_last.")
    if kind in MERGE_LAYERS or kind == "Concatenate":
        if len(inputs) < 2:
            raise UserError(f"The {kind} layer {layer} needs at least two inputs.")
        if kind == "Concatenate":
            axis = config.get("axis", -1)
            rank = len(inputs[0])
            if not isinstance(axis, int) or not -rank <= axis < rank + 1 or axis == 0:
                raise UserError(f"The Concatenate layer {layer} has axis {axis!r}; use -1 (channels).")
            index = axis - 1 if axis > 0 else axis + rank
            others = [s[:index] + s[index + 1:] for s in inputs]
            if any(len(s) != rank for s in inputs) or len(set(others)) != 1:
                raise UserError(f"The Concatenate layer {layer} gets inputs of shapes {inputs} that do not fit.")
            out = inputs[0][:index] + (sum(s[index] for s in inputs),) + inputs[0][index + 1:]
            return out, 0, _size(out)
        if len(set(inputs)) != 1:
            raise UserError(f"The {kind} layer {layer} gets inputs of different shapes {inputs}.")
        return inputs[0], 0, _size(inputs[0]) * (len(inputs) - 1)
    if len(inputs) != 1:
        raise UserError(f"The {kind} layer {layer} gets {len(inputs)} inputs; it takes one.")
    shape = inputs[0]
    if kind in IDENTITY_LAYERS:
        return shape, 0, _size(shape)
    bias = 1 if config.get("use_bias", True) else 0
    if kind in ("Conv2D", "DepthwiseConv2D", "SeparableConv2D"):
        height, width, channels = _image(shape, layer, kind)
        kh, kw = _pair(config.get("kernel_size"), f"{layer}.kernel_size")
        sh, sw = _pair(config.get("strides", 1), f"{layer}.strides")
        dh, dw = _pair(config.get("dilation_rate", 1), f"{layer}.dilation_rate")
        padding = config.get("padding", "valid")
        out_h = _conv_output(height, kh, sh, dh, padding, layer)
        out_w = _conv_output(width, kw, sw, dw, padding, layer)
        pixels = out_h * out_w
        if kind == "Conv2D":
            filters = _int(config.get("filters"), f"{layer}.filters")
            groups = _int(config.get("groups", 1), f"{layer}.groups")
            if channels % groups or filters % groups:
                raise UserError(f"The layer {layer} has {groups} groups, which do not divide its channels.")
            weights = kh * kw * (channels // groups) * filters
            return (out_h, out_w, filters), weights + bias * filters, 2 * weights * pixels
        multiplier = _int(config.get("depth_multiplier", 1), f"{layer}.depth_multiplier")
        depthwise = kh * kw * channels * multiplier
        if kind == "DepthwiseConv2D":
            return (out_h, out_w, channels * multiplier), depthwise + bias * channels * multiplier, 2 * depthwise * pixels
        filters = _int(config.get("filters"), f"{layer}.filters")
        pointwise = channels * multiplier * filters
        params = depthwise + pointwise + bias * filters
        return (out_h, out_w, filters), params, 2 * (depthwise + pointwise) * pixels
    if kind in ("MaxPooling2D", "AveragePooling2D"):
        height, width, channels = _image(shape, layer, kind)
        ph, pw = _pair(config.get("pool_size", 2), f"{layer}.pool_size")
        strides = config.get("strides")
        sh, sw = _pair(strides if strides is not None else [ph, pw], f"{layer}.strides")
        padding = config.get("padding", "valid")
        out = (_conv_output(height, ph, sh, 1, padding, layer), _conv_output(width, pw, sw, 1, padding, layer), channels)
        return out, 0, _size(out) * ph * pw
    if kind in ("GlobalAveragePooling2D", "GlobalMaxPooling2D"):
        height, width, channels = _image(shape, layer, kind)
        return ((1, 1, channels) if config.get("keepdims") else (channels,)), 0, height * width * channels
    if kind == "Flatten":
        return (_size(shape),), 0, 0
    if kind == "Reshape":
        target = config.get("target_shape")
        if not isinstance(target, list | tuple) or not target or any(
            isinstance(v, bool) or not isinstance(v, int) or (v < 1 and v != -1) for v in target
        ) or list(target).count(-1) > 1:
            raise UserError(f"The Reshape layer {layer} has target_shape {target!r}, which is not a shape.")
        known = math.prod(v for v in target if v != -1)
        if -1 in target:
            if _size(shape) % known:
                raise UserError(f"The Reshape layer {layer} cannot reshape {shape} into {tuple(target)}.")
            target = [_size(shape) // known if v == -1 else v for v in target]
        if math.prod(target) != _size(shape):
            raise UserError(f"The Reshape layer {layer} cannot reshape {shape} into {tuple(target)}.")
        return tuple(target), 0, 0
    if kind == "Dense":
        units = _int(config.get("units"), f"{layer}.units")
        weights = shape[-1] * units
        return shape[:-1] + (units,), weights + bias * units, 2 * weights * _size(shape[:-1])
    if kind in ("BatchNormalization", "LayerNormalization"):
        axis = config.get("axis", -1)
        if axis not in (-1, len(shape), [-1], [len(shape)]):
            raise UserError(f"The {kind} layer {layer} normalises axis {axis!r}; use the channels axis (-1).")
        vectors = int(bool(config.get("center", True))) + int(bool(config.get("scale", True)))
        vectors += 2 if kind == "BatchNormalization" else 0  # the moving mean and variance
        return shape, vectors * shape[-1], 4 * _size(shape)
    if kind == "PReLU":
        shared = config.get("shared_axes") or []
        shared = [shared] if isinstance(shared, int) else shared
        alpha = [1 if (i + 1) in shared else n for i, n in enumerate(shape)]
        return shape, math.prod(alpha), 2 * _size(shape)
    if kind in ("ZeroPadding2D", "Cropping2D"):
        height, width, channels = _image(shape, layer, kind)
        amount = config.get("padding" if kind == "ZeroPadding2D" else "cropping", 1)
        if isinstance(amount, list | tuple) and len(amount) == 2 and all(isinstance(a, list | tuple) for a in amount):
            (top, bottom), (left, right) = (_pair(a, f"{layer} amount", 0) for a in amount)
        else:
            top, left = _pair(amount, f"{layer} amount", 0)
            bottom, right = top, left
        sign = 1 if kind == "ZeroPadding2D" else -1
        out = (height + sign * (top + bottom), width + sign * (left + right), channels)
        if out[0] < 1 or out[1] < 1:
            raise UserError(f"The Cropping2D layer {layer} crops away its whole {height}×{width} input.")
        return out, 0, _size(out)
    if kind == "UpSampling2D":
        height, width, channels = _image(shape, layer, kind)
        fh, fw = _pair(config.get("size", 2), f"{layer}.size")
        out = (height * fh, width * fw, channels)
        return out, 0, _size(out)
    raise UserError(f"The model uses a {kind} layer ({layer}); this app reads standard CNN layers only.")


class _Walk:
    """Totals over every layer, nested models included."""

    def __init__(self, max_layers: int):
        self.max_layers = max_layers
        self.params = self.flops = self.layers = self.largest = 0
        self.wide = False

    def count_layer(self) -> None:
        self.layers += 1
        if self.layers > self.max_layers:
            raise UserError(f"The model has more than {self.max_layers} layers; upload one with fewer layers.")

    def call(self, layer: dict, inputs: list[Shape]) -> Shape:
        """The output shape of calling `layer` on inputs of these shapes; adds its cost."""
        kind = ALIASES.get(str(layer.get("class_name")), str(layer.get("class_name")))
        config = layer.get("config")
        name = _name(layer)
        if not isinstance(config, dict):
            raise UserError(f"The layer {name} has no readable config; save the model again.")
        if kind in MODEL_CLASSES:
            if len(inputs) != 1:
                raise UserError(f"The nested model {name} gets {len(inputs)} inputs; this app reads one.")
            return self.model(layer, inputs[0])
        if kind not in KNOWN_LAYERS or kind == "InputLayer":
            raise UserError(
                f"The model uses a {kind} layer ({name}); this app reads standard CNN layers only "
                f"({', '.join(sorted(KNOWN_LAYERS - {'InputLayer'}))})."
            )
        self.count_layer()
        check_activation(config.get("activation"), name)
        self._check_build_config(layer, inputs, name)
        out, params, flops = _layer_cost(kind, config, inputs, name)
        self.params += params
        self.flops += flops
        self.largest = max(self.largest, _size(out))
        if "64" in str((config.get("dtype") or {}).get("config", {}).get("name", "")
                       if isinstance(config.get("dtype"), dict) else config.get("dtype")):
            self.wide = True
        return out

    @staticmethod
    def _check_build_config(layer: dict, inputs: list[Shape], name: str) -> None:
        # Keras builds a layer from this while loading, before it ever sees the real input.
        build = layer.get("build_config")
        if not isinstance(build, dict) or build.get("input_shape") is None:
            return
        declared = build["input_shape"]
        shapes = declared if len(inputs) > 1 else [declared]
        try:
            found = [tuple(s[1:]) for s in shapes]
        except TypeError:
            found = None
        if found != list(inputs):
            raise UserError(
                f"The layer {name} says it is built for inputs of shape {declared!r}, but it gets {inputs}; "
                "save the model again with model.save('x.keras')."
            )

    def model(self, node: dict, input_shape: Shape) -> Shape:
        kind = node.get("class_name")
        config = node.get("config")
        if not isinstance(config, dict) or not isinstance(config.get("layers"), list):
            raise UserError("The model's config.json has no list of layers; save it with model.save('x.keras').")
        layers = config["layers"]
        if kind == "Sequential":
            shape = input_shape
            for layer in layers:
                if not isinstance(layer, dict):
                    raise UserError("The model's config.json has an unreadable layer; save the model again.")
                if layer.get("class_name") == "InputLayer":
                    declared = (layer.get("config") or {}).get("batch_shape") or (layer.get("config") or {}).get(
                        "batch_input_shape")
                    if declared is not None and _shape(declared, "the input shape") != shape:
                        raise WrongInputShape(_shape(declared, "the input shape"))
                    continue
                shape = self.call(layer, [shape])
            return shape
        return self._functional(config, layers, input_shape)

    def _functional(self, config: dict, layers: list, input_shape: Shape) -> Shape:
        outputs: dict[tuple[str, int], list[Shape]] = {}
        by_name: dict[str, dict] = {}
        for layer in layers:
            if not isinstance(layer, dict) or not isinstance(layer.get("name"), str):
                raise UserError("The model's config.json has an unreadable layer; save the model again.")
            name = layer["name"]
            by_name[name] = layer
            if layer.get("class_name") == "InputLayer":
                layer_config = layer.get("config") or {}
                declared = layer_config.get("batch_shape") or layer_config.get("batch_input_shape")
                shape = _shape(declared, "the input shape") if declared is not None else input_shape
                if shape != input_shape:
                    raise WrongInputShape(shape)
                outputs[(name, 0)] = [shape]
                continue
            nodes = layer.get("inbound_nodes")
            if not isinstance(nodes, list) or not nodes:
                raise UserError(f"The layer {name} is not connected to anything; save the model again.")
            for index, node in enumerate(nodes):
                inputs = [self._lookup(outputs, history, name) for history in _histories(node)]
                if not inputs:
                    raise UserError(f"The layer {name} has a call without inputs; save the model again.")
                outputs[(name, index)] = [self.call(layer, inputs)]
        ends = _references(config.get("output_layers"))
        if len(ends) != 1:
            raise UserError(f"The model has {len(ends)} outputs; this app expects one.")
        starts = _references(config.get("input_layers"))
        if len(starts) != 1:
            raise UserError(f"The model has {len(starts)} inputs; this app expects one.")
        return self._lookup(outputs, ends[0], "the model's output")

    @staticmethod
    def _lookup(outputs: dict, history: Sequence, where: str) -> Shape:
        try:
            name, node, tensor = history
            return outputs[(name, node)][tensor]
        except (ValueError, TypeError, KeyError, IndexError):
            raise UserError(
                f"The layer {where} refers to {history!r}, which does not come before it; save the model again."
            ) from None


def _histories(node: Any) -> list:
    """The `keras_history` of every tensor a call node takes, in order (searched without recursion)."""
    found = []
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if item.get("class_name") == "__keras_tensor__":
                found.append((item.get("config") or {}).get("keras_history"))
                continue
            stack.extend(reversed(list(item.values())))
        elif isinstance(item, list | tuple):
            stack.extend(reversed(item))
    return found


def _references(value: Any) -> list:
    # ["image", 0, 0] for one tensor, [["a", 0, 0], ["b", 0, 0]] for several.
    if isinstance(value, list) and len(value) == 3 and isinstance(value[0], str):
        return [value]
    if isinstance(value, list) and all(isinstance(v, list) for v in value):
        return value
    return []


def model_cost(config: dict, input_shape: Shape, max_layers: int = 10_000) -> ModelCost:
    """The cost of the model a Keras config.json describes, given the input shape it will get.

    Raises UserError for a config this module cannot read, a layer it does not know, an input of
    another shape than `input_shape`, or more than `max_layers` layers (checked as it walks).
    """
    if not isinstance(config, dict) or config.get("class_name") not in MODEL_CLASSES:
        raise UserError("The config.json does not describe a Keras model; save it with model.save('x.keras').")
    walk = _Walk(max_layers)
    build = config.get("build_config")
    if isinstance(build, dict) and build.get("input_shape") is not None:
        declared = _shape(build["input_shape"], "the input shape")
        if declared != tuple(input_shape):
            raise WrongInputShape(declared)
    output = walk.model(config, tuple(input_shape))
    bytes_per_param = 8 if walk.wide else 4
    return ModelCost(
        params=walk.params,
        weight_bytes=walk.params * bytes_per_param,
        flops=walk.flops,
        layers=walk.layers,
        largest_activation=max(walk.largest, _size(input_shape)),
        input_shape=tuple(input_shape),
        output_shape=output,
    )


def keras_model_cost(model, input_shape: Shape | None = None, max_layers: int = 10_000) -> ModelCost:
    """`model_cost` of a built Keras model (its own config, so no file is needed)."""
    import json

    shape = tuple(input_shape or model.inputs[0].shape[1:])
    return model_cost(json.loads(model.to_json()), shape, max_layers=max_layers)
