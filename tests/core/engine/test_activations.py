import numpy as np
import pytest

from cnn_core.engine import ops
from cnn_core.engine.activations import FeatureExtractor, conv_filters
from cnn_core.engine.models import build_model
from cnn_core.engine.specs import AvgPool, BatchNorm, Conv2D, Dense, Flatten, MaxPool, ModelSpec


@pytest.fixture(scope="module")
def model():
    spec = ModelSpec(
        layers=(
            Conv2D(3, 3), MaxPool(2), BatchNorm(), Conv2D(2, 5, padding="same", activation="tanh"), AvgPool(2),
            Flatten(), Dense(10, "softmax"),
        ),
        name="probe",
    )  # fmt: skip
    model = build_model(spec)
    # Non-zero biases, so a forgotten bias would show in the comparison.
    for layer in model.layers:
        if layer.name.startswith("conv2d"):
            kernel, bias = layer.get_weights()
            layer.set_weights([kernel, np.linspace(-0.1, 0.1, len(bias)).astype(np.float32)])
    return model


@pytest.fixture(scope="module")
def image():
    return np.random.default_rng(0).random((28, 28), dtype=np.float32)


def manual_conv(inputs, kernel, bias, padding, activation):
    """A Keras Conv2D computed with the teaching ops: sum over input channels of 2-D cross-correlations."""
    outputs = []
    for out in range(kernel.shape[3]):
        total = sum(ops.conv2d(inputs[:, :, c], kernel[:, :, c, out], padding=padding) for c in range(inputs.shape[2]))
        outputs.append(activation(total + bias[out]))
    return np.stack(outputs, axis=-1)


def per_channel(function, x):
    return np.stack([function(x[:, :, c]) for c in range(x.shape[2])], axis=-1)


def test_maps_match_a_manual_forward_pass(model, image):
    maps = FeatureExtractor(model).maps(image)
    assert [m.kind for m in maps] == ["conv2d", "maxpool", "conv2d", "avgpool"]
    assert [m.layer_index for m in maps] == [1, 2, 4, 5]
    assert [m.name for m in maps] == ["conv2d_1", "maxpool_2", "conv2d_4", "avgpool_5"]
    assert [m.shape for m in maps] == [(26, 26, 3), (13, 13, 3), (13, 13, 2), (6, 6, 2)]
    assert maps[0].description == "Conv2D 3 × 3×3, valid, relu"
    assert maps[1].description == "MaxPool 2×2"

    filters = conv_filters(model)
    first = manual_conv(image[:, :, None], filters[0].kernel, filters[0].bias, "valid", ops.relu)
    np.testing.assert_allclose(maps[0].activations, first, atol=1e-5)
    pooled = per_channel(ops.max_pool, first)
    np.testing.assert_allclose(maps[1].activations, pooled, atol=1e-5)
    # Batch norm in inference mode with fresh statistics: x / sqrt(1 + epsilon).
    epsilon = model.get_layer("batchnorm_3").epsilon
    normalised = pooled / np.sqrt(1 + epsilon)
    second = manual_conv(normalised, filters[1].kernel, filters[1].bias, "same", np.tanh)
    np.testing.assert_allclose(maps[2].activations, second, atol=1e-5)
    np.testing.assert_allclose(maps[3].activations, per_channel(ops.avg_pool, second), atol=1e-5)


def test_conv_filters(model):
    filters = conv_filters(model)
    assert [f.layer_index for f in filters] == [1, 4]
    assert filters[0].kernel.shape == (3, 3, 1, 3) and filters[1].kernel.shape == (5, 5, 3, 2)
    np.testing.assert_allclose(filters[0].bias, [-0.1, 0.0, 0.1], atol=1e-7)
    np.testing.assert_array_equal(filters[1].kernel, model.get_layer("conv2d_4").get_weights()[0])
    assert filters[1].description == "Conv2D 2 × 5×5, same, tanh"


def test_layers_are_found_by_type_not_name(image):
    import keras

    inputs = keras.Input((28, 28, 1))
    hidden = keras.layers.Conv2D(2, 3, name="edges")(inputs)
    hidden = keras.layers.MaxPooling2D(name="shrink")(hidden)
    outputs = keras.layers.Dense(10, activation="softmax")(keras.layers.Flatten()(hidden))
    maps = FeatureExtractor(keras.Model(inputs, outputs)).maps(image[..., None])
    assert [(m.name, m.kind) for m in maps] == [("edges", "conv2d"), ("shrink", "maxpool")]


def test_model_without_spatial_layers_gives_no_maps(image):
    model = build_model(ModelSpec(layers=(Flatten(), Dense(10, "softmax")), name="dense"))
    extractor = FeatureExtractor(model)
    assert extractor.layer_count == 0
    assert extractor.maps(image) == []
    assert conv_filters(model) == []


def test_bad_image_raises_value_error(model):
    with pytest.raises(ValueError, match="one image"):
        FeatureExtractor(model).maps(np.zeros((1, 28, 28, 1)))
