"""Why the model said what it said: which pixels mattered, and one unit's output recomputed by hand.

- `occlusion_map`: grey out a patch at every position (all positions in one batched call) and
  record how much the target class's probability drops.
- `saliency_map`: SmoothGrad × input — the gradient of the target's logit with respect to the
  pixels, averaged over noisy copies of the image (all copies in one GradientTape call), times the pixels.
- `neuron_trace`: one cell of one layer recomputed from the layer below in NumPy — the window,
  the weights, the element-wise products, their sum, the bias, the activation — next to the
  model's own value for that cell.
- `receptive_field`: the input pixels a unit can see.

The compiled TensorFlow functions are built once per model and kept while the model lives.
"""

from __future__ import annotations

import math
import threading
import weakref
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from cnn_core.engine.errors import UserError

if TYPE_CHECKING:
    import keras

# A trace "equals the model's own output" when it is this close (relative for large values).
TOLERANCE = 1e-4
SMOOTHGRAD_SAMPLES = 16
SMOOTHGRAD_NOISE = 0.15
OCCLUSION_PATCH = 6
TOP_INPUTS = 12


# --- activations, in NumPy, the way Keras computes them -------------------------------------------------------


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _softmax(x: np.ndarray) -> np.ndarray:
    shifted = np.exp(x - np.max(x))
    return shifted / shifted.sum()


_SELU_ALPHA, _SELU_SCALE = 1.6732632423543772, 1.0507009873554805
ACTIVATIONS = {
    "linear": lambda x: x,
    "relu": lambda x: np.maximum(x, 0.0),
    "sigmoid": _sigmoid,
    "tanh": np.tanh,
    "elu": lambda x: np.where(x > 0, x, np.expm1(np.minimum(x, 0.0))),
    "selu": lambda x: _SELU_SCALE * np.where(x > 0, x, _SELU_ALPHA * np.expm1(np.minimum(x, 0.0))),
    "gelu": lambda x: 0.5 * x * (1.0 + np.vectorize(math.erf)(np.asarray(x) / math.sqrt(2.0))),
    "swish": lambda x: x * _sigmoid(x),
    "silu": lambda x: x * _sigmoid(x),
    "softmax": _softmax,
}
ACTIVATION_WORDS = {
    "linear": "no activation: the sum is the output",
    "relu": "ReLU: negatives become 0",
    "sigmoid": "sigmoid: squashed into 0…1",
    "tanh": "tanh: squashed into −1…1",
    "softmax": "softmax: exponentials, divided by their total",
}


def activation_name(layer) -> str:
    activation = getattr(layer, "activation", None)
    return "linear" if activation is None else getattr(activation, "__name__", str(activation))


def apply_activation(name: str, values: np.ndarray) -> np.ndarray:
    """`name`'s activation on float64 values (softmax over the whole vector)."""
    if name not in ACTIVATIONS:
        raise UserError(f"The activation {name!r} cannot be explained here; use one of {', '.join(ACTIVATIONS)}.")
    return np.asarray(ACTIVATIONS[name](np.asarray(values, dtype=np.float64)), dtype=np.float64)


# --- results --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PixelBox:
    """Rows top…bottom-1 and columns left…right-1 of the input image."""

    top: int
    left: int
    bottom: int
    right: int

    @property
    def height(self) -> int:
        return self.bottom - self.top

    @property
    def width(self) -> int:
        return self.right - self.left


@dataclass(frozen=True)
class ChannelContribution:
    """What one input channel adds to a convolution cell: its window, weights, products and their sum."""

    channel: int
    patch: np.ndarray
    weights: np.ndarray
    products: np.ndarray
    total: float


@dataclass(frozen=True)
class NeuronTrace:
    """One unit's output recomputed from the layer below.

    For a convolution `patch`, `weights` and `products` are (k, k, in_channels) — zero padding
    included as zeros — and `contributions` splits the sum per input channel, strongest first.
    For a dense unit they are the (inputs,) vectors and `top_inputs` lists the largest products.
    For pooling `patch` is the window and `winner` (max) the position that won in it. For batch
    normalisation `weights` holds the one scale, `bias` the shift. `value` is what this
    arithmetic gives; `model_value` is what Keras computed for the same cell.
    """

    layer_index: int
    layer_name: str
    kind: str
    row: int
    col: int
    channel: int
    patch: np.ndarray
    weights: np.ndarray | None
    products: np.ndarray | None
    bias: float
    preactivation: float
    activation: str
    value: float
    model_value: float
    window: tuple[int, int, int, int]  # (top, left, height, width) in the layer below, may start in the padding
    receptive_field: PixelBox
    input_layer_index: int
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]
    padding: str = "valid"
    stride: int = 1
    contributions: tuple[ChannelContribution, ...] = ()
    top_inputs: tuple[tuple[int, float, float, float], ...] = ()  # (input index, value, weight, product)
    winner: tuple[int, int] | None = None
    logits: np.ndarray | None = None
    probabilities: np.ndarray | None = None
    folded_batchnorm: bool = False
    details: dict = field(default_factory=dict)

    @property
    def matches(self) -> bool:
        return abs(self.value - self.model_value) <= TOLERANCE * max(1.0, abs(self.model_value))


# --- the per-model machinery ----------------------------------------------------------------------------------


def _is_input(layer) -> bool:
    import keras

    return isinstance(layer, keras.layers.InputLayer)


def _kind(layer) -> str:
    import keras

    kinds = (
        (keras.layers.Conv2D, "conv2d"), (keras.layers.MaxPooling2D, "maxpool"),
        (keras.layers.AveragePooling2D, "avgpool"), (keras.layers.GlobalAveragePooling2D, "global_avgpool"),
        (keras.layers.GlobalMaxPooling2D, "global_maxpool"), (keras.layers.BatchNormalization, "batchnorm"),
        (keras.layers.Dense, "dense"), (keras.layers.Flatten, "flatten"), (keras.layers.Dropout, "dropout"),
        (keras.layers.InputLayer, "input"), (keras.layers.Activation, "activation"), (keras.layers.ReLU, "relu"),
    )
    for cls, kind in kinds:
        if isinstance(layer, cls):
            return kind
    return type(layer).__name__.lower()


class _Explainer:
    """Compiled functions for one model: every layer's input and output in one pass, probabilities, SmoothGrad."""

    def __init__(self, model: keras.Model):
        import keras
        import tensorflow as tf

        shape = tuple(model.input_shape)
        if len(shape) != 4 or any(v is None for v in shape[1:]):
            raise UserError(f"Explanations need a model over fixed-size images; this one takes {shape}.")
        self.input_shape: tuple[int, int, int] = tuple(int(v) for v in shape[1:])
        self.layers = list(model.layers)
        # Every layer's output by position in model.layers; a layer's input is found among them.
        outputs, self._slot = [], {}
        for index, layer in enumerate(self.layers):
            if _is_input(layer):
                continue
            self._slot[index] = len(outputs)
            outputs.append(layer.output)
        self._input_of: dict[int, int] = {}
        output_ids = {id(self.layers[i].output): i for i in self._slot}
        first = next((i for i, layer in enumerate(self.layers) if not _is_input(layer)), None)
        for index in self._slot:
            source = self.layers[index].input
            if isinstance(source, list | tuple):
                continue  # a layer with several inputs (Add, Concatenate) is not explained
            if id(source) in output_ids:
                self._input_of[index] = output_ids[id(source)]
            elif index == first or any(source is tensor for tensor in model.inputs):
                self._input_of[index] = -1  # the image itself
        probe = keras.Model(inputs=model.inputs, outputs=outputs)
        spec = tf.TensorSpec((None, *self.input_shape), tf.float32)

        @tf.function(input_signature=[tf.TensorSpec((1, *self.input_shape), tf.float32)])
        def everything(images):
            return probe(images, training=False)

        @tf.function(input_signature=[spec], reduce_retracing=True)
        def probabilities(images):
            return model(images, training=False)

        logits_model = self._logits_model(model)

        @tf.function(input_signature=[spec, tf.TensorSpec((), tf.int32)], reduce_retracing=True)
        def gradients(images, target):
            with tf.GradientTape() as tape:
                tape.watch(images)
                scores = logits_model(images, training=False)[:, target]
            return tape.gradient(scores, images)

        self._everything = everything.get_concrete_function()
        self._probabilities = probabilities.get_concrete_function()
        self._gradients = gradients.get_concrete_function()
        self._cache_key: bytes | None = None
        self._cache: list[np.ndarray] = []
        self._lock = threading.Lock()

    @staticmethod
    def _logits_model(model):
        """The model up to its last Dense layer's sum, before the softmax: its gradients do not vanish
        when the model is sure (the softmax's do)."""
        import keras

        last = model.layers[-1]
        if isinstance(last, keras.layers.Dense) and activation_name(last) == "softmax":
            features = keras.Model(inputs=model.inputs, outputs=last.input)

            def logits(images, training=False):
                return features(images, training=training) @ last.kernel + last.bias

            return logits

        def log_probabilities(images, training=False):
            import tensorflow as tf

            return tf.math.log(model(images, training=training) + 1e-12)

        return log_probabilities

    def prepare(self, image: np.ndarray) -> np.ndarray:
        values = np.asarray(image, dtype=np.float32)
        if values.ndim == 2 and self.input_shape[2] == 1:
            values = values[..., np.newaxis]
        if values.shape != self.input_shape:
            raise UserError(f"The image is {values.shape}; this model takes {self.input_shape[:2]} pixels.")
        return values

    def all_outputs(self, image: np.ndarray) -> list[np.ndarray]:
        """Every layer's output for one image (the last image's are kept, so a trace after a trace is free)."""
        values = self.prepare(image)
        key = values.tobytes()
        with self._lock:
            if key != self._cache_key:
                outputs = self._everything(values[np.newaxis])
                if not isinstance(outputs, list | tuple):
                    outputs = [outputs]
                self._cache = [np.asarray(output.numpy()[0], dtype=np.float32) for output in outputs]
                self._cache_key = key
            return self._cache

    def output(self, image: np.ndarray, index: int) -> np.ndarray:
        if index == -1:
            return self.prepare(image)
        return self.all_outputs(image)[self._slot[index]]

    def probabilities(self, images: np.ndarray) -> np.ndarray:
        return self._probabilities(np.asarray(images, dtype=np.float32)).numpy()

    def gradients(self, images: np.ndarray, target: int) -> np.ndarray:
        import tensorflow as tf

        return self._gradients(np.asarray(images, dtype=np.float32), tf.constant(target, tf.int32)).numpy()


_EXPLAINERS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_EXPLAINERS_LOCK = threading.Lock()


def _explainer(model) -> _Explainer:
    with _EXPLAINERS_LOCK:
        explainer = _EXPLAINERS.get(model)
        if explainer is None:
            explainer = _EXPLAINERS[model] = _Explainer(model)
        return explainer


def forward(model, image: np.ndarray) -> list[np.ndarray]:
    """Every layer's output for one image, indexed like `model.layers` (None for the input layer)."""
    explainer = _explainer(model)
    outputs = explainer.all_outputs(image)
    return [outputs[explainer._slot[i]] if i in explainer._slot else None for i in range(len(explainer.layers))]


def probabilities(model, image: np.ndarray) -> np.ndarray:
    """The class probabilities for one image, through the same compiled function the maps use."""
    explainer = _explainer(model)
    return explainer.probabilities(explainer.prepare(image)[np.newaxis])[0]


@dataclass(frozen=True)
class LayerInfo:
    index: int  # position in model.layers
    name: str
    kind: str
    output_shape: tuple[int, ...]
    explainable: bool


def layers(model) -> list[LayerInfo]:
    """Every layer after the input, with its output shape and whether `neuron_trace` can explain it."""
    explainer = _explainer(model)
    known = {"conv2d", "maxpool", "avgpool", "batchnorm", "dense", "flatten", "dropout", "global_avgpool",
             "global_maxpool"}
    return [
        LayerInfo(i, layer.name, _kind(layer), tuple(int(v) for v in layer.output.shape[1:]),
                  i in explainer._input_of and _kind(layer) in known)
        for i, layer in enumerate(explainer.layers) if not _is_input(layer)
    ]


def _check_target(model, target: int) -> int:
    classes = int(model.output_shape[-1])
    if isinstance(target, bool) or not isinstance(target, int | np.integer) or not 0 <= int(target) < classes:
        raise UserError(f"The class must be a whole number from 0 to {classes - 1}, got {target!r}.")
    return int(target)


# --- which pixels mattered ------------------------------------------------------------------------------------


def _positions(size: int, patch: int, stride: int) -> list[int]:
    starts = list(range(0, size - patch + 1, stride))
    if starts[-1] != size - patch:
        starts.append(size - patch)  # the last patch reaches the edge, so every pixel is covered
    return starts


def occlusion_map(model, image: np.ndarray, target: int, patch: int = OCCLUSION_PATCH, stride: int | None = None,
                  fill: float = 0.0) -> np.ndarray:
    """How much the target's probability drops when a patch×patch square around each pixel is blanked.

    Positive where the pixels supported the target, negative where hiding them helped it. All
    occluded copies go through the model in one batch. Each pixel gets the mean drop over the
    patches that covered it.
    """
    explainer = _explainer(model)
    target = _check_target(model, target)
    values = explainer.prepare(image)
    height, width = explainer.input_shape[:2]
    if isinstance(patch, bool) or not isinstance(patch, int | np.integer) or not 1 <= patch <= min(height, width):
        raise UserError(f"The occlusion patch must be 1 to {min(height, width)} pixels, got {patch!r}.")
    stride = max(1, int(patch) // 2) if stride is None else int(stride)
    rows, cols = _positions(height, patch, stride), _positions(width, patch, stride)
    batch = np.repeat(values[np.newaxis], len(rows) * len(cols) + 1, axis=0)
    boxes = [(r, c) for r in rows for c in cols]
    for n, (r, c) in enumerate(boxes, start=1):
        batch[n, r : r + patch, c : c + patch, :] = fill
    probabilities = explainer.probabilities(batch)[:, target].astype(np.float64)
    drops = probabilities[0] - probabilities[1:]
    total = np.zeros((height, width))
    counts = np.zeros((height, width))
    for drop, (r, c) in zip(drops, boxes, strict=True):
        total[r : r + patch, c : c + patch] += drop
        counts[r : r + patch, c : c + patch] += 1
    return (total / np.maximum(counts, 1)).astype(np.float32)


def saliency_map(model, image: np.ndarray, target: int, samples: int = SMOOTHGRAD_SAMPLES,
                 noise: float = SMOOTHGRAD_NOISE, seed: int = 0) -> np.ndarray:
    """SmoothGrad × input: each pixel times the gradient of the target's logit there, the gradient
    averaged over noisy copies of the image; scaled so the absolute values sum to 1.

    Positive where the ink argued for the target, negative where it argued against. The plain
    gradient is spread over the whole image (ink anywhere would change the score); times the
    input it says what the ink that is there did. The noisy copies go through one GradientTape
    call; the seed is fixed, so the same model and image always give the same map.
    """
    explainer = _explainer(model)
    target = _check_target(model, target)
    values = explainer.prepare(image)
    rng = np.random.default_rng(seed)
    batch = values[np.newaxis] + rng.normal(0.0, noise, size=(samples, *values.shape)).astype(np.float32)
    batch[0] = values  # one clean copy
    gradients = explainer.gradients(batch, target).mean(axis=0)
    attribution = (gradients * values).sum(axis=-1)
    total = float(np.abs(attribution).sum())
    return (attribution / total if total > 0 else attribution).astype(np.float32)


# --- one unit, by hand ----------------------------------------------------------------------------------------


def _pair(value) -> tuple[int, int]:
    return (int(value), int(value)) if isinstance(value, int | np.integer) else (int(value[0]), int(value[1]))


def padding_amounts(size: int, window: int, stride: int, padding: str) -> tuple[int, int]:
    """Zeros added before and after along one axis: TensorFlow's rule, any odd one goes after."""
    if padding != "same":
        return 0, 0
    out = -(-size // stride)
    total = max((out - 1) * stride + window - size, 0)
    return total // 2, total - total // 2


def _window_start(index: int, size_in: int, window: int, stride: int, padding: str) -> int:
    return index * stride - padding_amounts(size_in, window, stride, padding)[0]


def _geometry(layer, kind: str) -> tuple[tuple[int, int], tuple[int, int], str]:
    """Window size, stride and padding of a conv or pooling layer."""
    if kind == "conv2d":
        if _pair(getattr(layer, "dilation_rate", 1)) != (1, 1) or getattr(layer, "groups", 1) != 1:
            raise UserError(f"Layer {layer.name} uses dilation or groups, which this view does not explain.")
        return _pair(layer.kernel_size), _pair(layer.strides), layer.padding
    window = _pair(layer.pool_size)
    strides = _pair(layer.strides if layer.strides is not None else layer.pool_size)
    return window, strides, layer.padding


def _window(values: np.ndarray, top: int, left: int, height: int, width: int, fill: float) -> tuple[np.ndarray,
                                                                                                     np.ndarray]:
    """values[top:top+height, left:left+width] with cells outside filled, and a mask of the real cells."""
    rows, cols = values.shape[:2]
    patch = np.full((height, width, *values.shape[2:]), fill, dtype=np.float64)
    inside = np.zeros((height, width), dtype=bool)
    r0, r1 = max(top, 0), min(top + height, rows)
    c0, c1 = max(left, 0), min(left + width, cols)
    if r1 > r0 and c1 > c0:
        patch[r0 - top : r1 - top, c0 - left : c1 - left] = values[r0:r1, c0:c1]
        inside[r0 - top : r1 - top, c0 - left : c1 - left] = True
    return patch, inside


def conv_cell(inputs: np.ndarray, kernel: np.ndarray, row: int, col: int, *, bias: float = 0.0, stride: int = 1,
              padding: str = "valid", activation: str = "linear") -> dict:
    """One output cell of a convolution over `inputs` (H, W, C) with `kernel` (k, k, C): the arithmetic.

    Shared by `neuron_trace` and the playground, so both explain a convolution with the same numbers.
    Returns patch, weights, products, the sum, bias, preactivation, value, window and per-channel totals.
    """
    inputs = np.asarray(inputs, dtype=np.float64)
    if inputs.ndim == 2:
        inputs = inputs[..., np.newaxis]
    kernel = np.asarray(kernel, dtype=np.float64)
    if kernel.ndim == 2:
        kernel = kernel[..., np.newaxis]
    kh, kw = kernel.shape[:2]
    top = _window_start(row, inputs.shape[0], kh, stride, padding)
    left = _window_start(col, inputs.shape[1], kw, stride, padding)
    patch, _ = _window(inputs, top, left, kh, kw, 0.0)
    products = patch * kernel
    per_channel = products.sum(axis=(0, 1))
    preactivation = float(per_channel.sum()) + float(bias)
    value = float(apply_activation(activation, np.array([preactivation]))[0]) if activation != "softmax" else (
        preactivation)
    return {"patch": patch, "weights": kernel, "products": products, "sum": float(per_channel.sum()),
            "bias": float(bias), "preactivation": preactivation, "value": value, "window": (top, left, kh, kw),
            "per_channel": per_channel}


def output_size(size: int, window: int, stride: int, padding: str) -> int:
    """Keras's output length for a conv or pooling window along one axis."""
    return -(-size // stride) if padding == "same" else (size - window) // stride + 1


def receptive_field(model, layer_index: int, row: int, col: int) -> PixelBox:
    """The box of input pixels that unit (row, col) of layer `layer_index` can see (clipped to the image).

    Dense and global layers see the whole image.
    """
    explainer = _explainer(model)
    index = _check_layer(explainer, layer_index)
    height, width = explainer.input_shape[:2]
    top, left, bottom, right = int(row), int(col), int(row), int(col)  # inclusive, in the current layer
    while index != -1:
        layer = explainer.layers[index]
        kind = _kind(layer)
        if kind in ("conv2d", "maxpool", "avgpool"):
            (kh, kw), (sh, sw), padding = _geometry(layer, kind)
            size_h, size_w = (int(v) for v in _shape_in(explainer, index)[:2])
            top = _window_start(top, size_h, kh, sh, padding)
            left = _window_start(left, size_w, kw, sw, padding)
            bottom = _window_start(bottom, size_h, kh, sh, padding) + kh - 1
            right = _window_start(right, size_w, kw, sw, padding) + kw - 1
            top, left = max(top, 0), max(left, 0)
            bottom, right = min(bottom, size_h - 1), min(right, size_w - 1)
        elif kind in ("dense", "flatten", "global_avgpool", "global_maxpool"):
            return PixelBox(0, 0, height, width)
        index = explainer._input_of.get(index, -1)
    return PixelBox(top, left, bottom + 1, right + 1)


def _shape_in(explainer: _Explainer, index: int) -> tuple[int, ...]:
    source = explainer._input_of[index]
    if source == -1:
        return explainer.input_shape
    return tuple(int(v) for v in explainer.layers[source].output.shape[1:])


def _check_layer(explainer: _Explainer, layer_index: int) -> int:
    count = len(explainer.layers)
    if isinstance(layer_index, bool) or not isinstance(layer_index, int | np.integer) or not (
        0 <= int(layer_index) < count
    ):
        raise UserError(f"The layer must be a number from 0 to {count - 1}, got {layer_index!r}.")
    index = int(layer_index)
    if _is_input(explainer.layers[index]):
        raise UserError("The input layer computes nothing; pick a layer after it.")
    if index not in explainer._input_of:
        raise UserError(f"Layer {explainer.layers[index].name} has several inputs, which this view does not explain.")
    return index


def _check_cell(shape: tuple[int, ...], row: int, col: int, channel: int) -> None:
    names = ("row", "column", "channel")
    limits = (shape[0], shape[1], shape[2]) if len(shape) == 3 else (1, 1, shape[0])
    for name, value, limit in zip(names, (row, col, channel), limits, strict=True):
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or not 0 <= int(value) < limit:
            raise UserError(f"The {name} must be from 0 to {limit - 1} in this layer, got {value!r}.")


def neuron_trace(model, image: np.ndarray, layer_index: int, row: int = 0, col: int = 0, channel: int = 0, *,
                 fold_batchnorm: bool = False, top: int = TOP_INPUTS) -> NeuronTrace:
    """Recompute unit (row, col, channel) of `model.layers[layer_index]` for `image` from the layer below.

    Dense layers have no rows or columns: pass row = col = 0 and the unit as `channel`.
    `fold_batchnorm` folds a BatchNormalization that directly follows a convolution or dense
    layer without activation into its weights and bias, so the trace ends at the normalised value.
    """
    explainer = _explainer(model)
    index = _check_layer(explainer, layer_index)
    layer = explainer.layers[index]
    kind = _kind(layer)
    source = explainer._input_of[index]
    below = explainer.output(image, source).astype(np.float64)
    output = explainer.output(image, index)
    _check_cell(output.shape, row, col, channel)
    row, col, channel = int(row), int(col), int(channel)
    spatial = output.ndim == 3
    model_value = float(output[row, col, channel] if spatial else output[channel])
    common = {"layer_index": index, "layer_name": layer.name, "kind": kind, "row": row, "col": col,
              "channel": channel, "input_layer_index": source, "input_shape": tuple(below.shape),
              "output_shape": tuple(output.shape),
              "receptive_field": receptive_field(model, index, row, col) if spatial else receptive_field(
                  model, index, 0, 0)}

    following = explainer.layers[index + 1] if index + 1 < len(explainer.layers) else None
    fold = (fold_batchnorm and kind in ("conv2d", "dense") and activation_name(layer) == "linear"
            and following is not None and _kind(following) == "batchnorm"
            and explainer._input_of.get(index + 1) == index)
    scale, shift = 1.0, 0.0
    if fold:
        bn_scale, bn_shift = _batchnorm_affine(following)
        scale, shift = float(bn_scale[channel]), float(bn_shift[channel])
        model_value = float(explainer.output(image, index + 1)[(row, col, channel) if spatial else channel])

    if kind == "conv2d":
        (kh, kw), (sh, sw), padding = _geometry(layer, kind)
        if sh != sw:
            raise UserError(f"Layer {layer.name} has different strides across and down, which this view does "
                            "not explain.")
        weights = layer.get_weights()
        kernel = np.asarray(weights[0], dtype=np.float64)[..., channel] * scale
        bias = (float(weights[1][channel]) if layer.use_bias else 0.0) * scale + shift
        name = activation_name(layer)
        cell = conv_cell(below, kernel, row, col, bias=bias, stride=sh, padding=padding,
                         activation="linear" if name == "softmax" else name)
        value = cell["value"]
        if name == "softmax":  # over the channels at this position
            every = np.asarray(layer.get_weights()[0], dtype=np.float64)
            biases = np.asarray(weights[1], dtype=np.float64) if layer.use_bias else np.zeros(every.shape[-1])
            pre = np.einsum("ijc,ijcn->n", cell["patch"], every) + biases
            value = float(_softmax(pre)[channel])
        contributions = sorted(
            (ChannelContribution(c, cell["patch"][..., c], cell["weights"][..., c], cell["products"][..., c],
                                 float(cell["per_channel"][c])) for c in range(below.shape[-1])),
            key=lambda item: -abs(item.total),
        )
        return NeuronTrace(**common, patch=cell["patch"], weights=cell["weights"], products=cell["products"],
                           bias=cell["bias"], preactivation=cell["preactivation"], activation=name, value=value,
                           model_value=model_value, window=cell["window"], padding=padding, stride=sh,
                           contributions=tuple(contributions), folded_batchnorm=fold,
                           details={"sum": cell["sum"]})

    if kind in ("maxpool", "avgpool"):
        (ph, pw), (sh, sw), padding = _geometry(layer, kind)
        top_, left_ = (_window_start(row, below.shape[0], ph, sh, padding),
                       _window_start(col, below.shape[1], pw, sw, padding))
        patch, inside = _window(below[..., channel], top_, left_, ph, pw, np.nan)
        real = patch[inside]
        if kind == "maxpool":
            flat = int(np.nanargmax(np.where(inside, patch, -np.inf)))
            winner = divmod(flat, pw)
            value = float(patch[winner])
        else:
            winner, value = None, float(real.mean())  # Keras averages over the real cells only
        return NeuronTrace(**common, patch=patch, weights=None, products=None, bias=0.0,
                           preactivation=float(real.sum()), activation="linear", value=value,
                           model_value=model_value, window=(top_, left_, ph, pw), padding=padding, stride=sh,
                           winner=winner, details={"count": int(inside.sum())})

    if kind == "batchnorm":
        bn_scale, bn_shift = _batchnorm_affine(layer)
        x = float(below[row, col, channel] if spatial else below[channel])
        gamma, beta, mean, variance = _batchnorm_parts(layer)
        value = x * bn_scale[channel] + bn_shift[channel]
        return NeuronTrace(**common, patch=np.array([x]), weights=np.array([bn_scale[channel]]),
                           products=np.array([x * bn_scale[channel]]), bias=float(bn_shift[channel]),
                           preactivation=float(value), activation="linear", value=float(value),
                           model_value=model_value, window=(row, col, 1, 1),
                           details={"gamma": float(gamma[channel]), "beta": float(beta[channel]),
                                    "mean": float(mean[channel]), "variance": float(variance[channel]),
                                    "epsilon": float(layer.epsilon)})

    if kind == "dense":
        weights = layer.get_weights()
        vector = below.reshape(-1)
        every = np.asarray(weights[0], dtype=np.float64)
        biases = np.asarray(weights[1], dtype=np.float64) if layer.use_bias else np.zeros(every.shape[1])
        column = every[:, channel] * scale
        products = vector * column
        bias = float(biases[channel]) * scale + shift
        preactivation = float(products.sum()) + bias
        name = activation_name(layer)
        logits = probabilities = None
        if name == "softmax":
            logits = vector @ every + biases
            probabilities = _softmax(logits)
            value = float(probabilities[channel])
        else:
            value = float(apply_activation(name, np.array([preactivation]))[0])
        order = np.argsort(-np.abs(products))[:top]
        top_inputs = tuple((int(i), float(vector[i]), float(column[i]), float(products[i])) for i in order)
        return NeuronTrace(**common, patch=vector, weights=column, products=products, bias=bias,
                           preactivation=preactivation, activation=name, value=value, model_value=model_value,
                           window=(0, 0, 1, vector.size), top_inputs=top_inputs, logits=logits,
                           probabilities=probabilities, folded_batchnorm=fold)

    if kind in ("flatten", "dropout", "global_avgpool", "global_maxpool"):
        if kind == "flatten":
            position = np.unravel_index(channel, below.shape)
            value, patch = float(below[position]), np.array([below[position]])
            window = (int(position[0]), int(position[1]), 1, 1) if below.ndim == 3 else (0, int(position[0]), 1, 1)
        elif kind == "dropout":  # at prediction time dropout passes everything through
            value = float(below[row, col, channel] if spatial else below[channel])
            patch, window = np.array([value]), (row, col, 1, 1)
        else:
            patch = below[..., channel]
            value = float(patch.mean() if kind == "global_avgpool" else patch.max())
            window = (0, 0, below.shape[0], below.shape[1])
        return NeuronTrace(**common, patch=patch, weights=None, products=None, bias=0.0, preactivation=value,
                           activation="linear", value=value, model_value=model_value, window=window)

    raise UserError(f"Layer {layer.name} ({type(layer).__name__}) cannot be explained by hand here.")


def _batchnorm_parts(layer) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    weights = {w.path.split("/")[-1]: np.asarray(w.numpy(), dtype=np.float64) for w in layer.weights}
    mean, variance = weights["moving_mean"], weights["moving_variance"]
    gamma = weights.get("gamma", np.ones_like(mean))
    beta = weights.get("beta", np.zeros_like(mean))
    return gamma, beta, mean, variance


def _batchnorm_affine(layer) -> tuple[np.ndarray, np.ndarray]:
    """Batch normalisation at prediction time is one multiply and one add per channel."""
    gamma, beta, mean, variance = _batchnorm_parts(layer)
    scale = gamma / np.sqrt(variance + float(layer.epsilon))
    return scale, beta - mean * scale
