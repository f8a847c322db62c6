"""What a trained CNN computes inside: the feature maps of every convolution and pooling layer.

`FeatureExtractor` builds one Keras model whose outputs are all those layers at once, so the
maps of a whole network come from a single forward pass; it is built once per model and
shared. `conv_filters` reads the learned kernels themselves.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from cnn_core.engine.models import describe_keras_layer

if TYPE_CHECKING:
    import keras


@dataclass(frozen=True)
class LayerMaps:
    """The output of one spatial layer for one image.

    layer_index: position in `model.layers` (the input is 0, so for a model built from a spec
    this is the spec's 1-based layer number); kind: 'conv2d', 'maxpool' or 'avgpool';
    activations: (height, width, channels) float32.
    """

    layer_index: int
    name: str
    kind: str
    description: str
    activations: np.ndarray

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.activations.shape)


@dataclass(frozen=True)
class LayerFilters:
    """The learned kernels of one convolution: kernel (k, k, in_channels, out_channels) and bias (out_channels,)."""

    layer_index: int
    name: str
    description: str
    kernel: np.ndarray
    bias: np.ndarray | None


def _spatial_kind(layer) -> str | None:
    import keras

    if isinstance(layer, keras.layers.Conv2D):
        return "conv2d"
    if isinstance(layer, keras.layers.MaxPooling2D):
        return "maxpool"
    if isinstance(layer, keras.layers.AveragePooling2D):
        return "avgpool"
    return None


class FeatureExtractor:
    """All convolution and pooling outputs of a model for one image, in one forward pass.

    Layers are found by type, not by name, so models from anywhere (presets, uploads) work.
    A model without such layers gives an empty list.
    """

    def __init__(self, model: keras.Model):
        import keras
        import tensorflow as tf

        input_shape = tuple(model.input_shape)
        if len(input_shape) != 4 or any(v is None for v in input_shape[1:]):
            raise ValueError(f"Feature maps need a model over fixed-size images, got input shape {input_shape}.")
        self.input_shape: tuple[int, int, int] = tuple(int(v) for v in input_shape[1:])
        self._layers = [
            (index, layer, kind)
            for index, layer in enumerate(model.layers)
            if (kind := _spatial_kind(layer)) is not None
        ]
        self._forward = None
        if self._layers:
            # One model with every spatial layer as an output shares all the computation between them.
            probe = keras.Model(inputs=model.inputs, outputs=[layer.output for _, layer, _ in self._layers])

            @tf.function(input_signature=[tf.TensorSpec((1, *self.input_shape), tf.float32)])
            def forward(images):
                return probe(images, training=False)

            self._forward = forward.get_concrete_function()

    @property
    def layer_count(self) -> int:
        return len(self._layers)

    def maps(self, image: np.ndarray) -> list[LayerMaps]:
        """Feature maps of every convolution and pooling layer for one (H, W) or (H, W, C) image in [0, 1]."""
        image = np.asarray(image)
        if image.dtype == np.uint8:
            image = image.astype(np.float32) / 255.0
        if image.ndim == 2 and self.input_shape[2] == 1:
            image = image[..., np.newaxis]
        if image.shape != self.input_shape:
            height, width, channels = self.input_shape
            raise ValueError(f"Expected one image shaped ({height}, {width}) or {self.input_shape}, got {image.shape}.")
        if self._forward is None:
            return []
        outputs = self._forward(image[np.newaxis].astype(np.float32))
        if not isinstance(outputs, list | tuple):
            outputs = [outputs]
        return [
            LayerMaps(index, layer.name, kind, describe_keras_layer(layer), output.numpy()[0])
            for (index, layer, kind), output in zip(self._layers, outputs, strict=True)
        ]


def conv_filters(model: keras.Model) -> list[LayerFilters]:
    """The kernels and biases of every Conv2D layer, in order."""
    result = []
    for index, layer in enumerate(model.layers):
        if _spatial_kind(layer) != "conv2d":
            continue
        weights = layer.get_weights()
        bias = np.asarray(weights[1], dtype=np.float32) if len(weights) > 1 else None
        result.append(
            LayerFilters(index, layer.name, describe_keras_layer(layer), np.asarray(weights[0], dtype=np.float32), bias)
        )
    return result
