"""Explanations: occlusion and saliency point at the ink, and every hand-computed unit equals Keras's own."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from cnn_core.engine import datasets, explain, models
from cnn_core.engine.errors import UserError
from cnn_core.engine.specs import (
    AvgPool,
    BatchNorm,
    Conv2D,
    Dense,
    Dropout,
    Flatten,
    GlobalAvgPool,
    MaxPool,
    ModelSpec,
    TrainingConfig,
)
from cnn_core.workshop.presets import PRESETS

# Layer kinds the presets do not have: stride 2 with both paddings, average pooling, batch
# normalisation right after a linear convolution (foldable) and after a ReLU one (its own step).
EXTRA_SPECS = {
    "stride2_same_avg_bn": ModelSpec((
        Conv2D(6, 3, strides=2, padding="same", activation="linear"), BatchNorm(), AvgPool(2),
        Conv2D(5, 3, strides=2, padding="valid", activation="tanh"), Flatten(), Dense(10, "softmax"),
    ), name="extra1"),
    "stride2_valid_relu_bn_gap": ModelSpec((
        Conv2D(4, 5, strides=2, padding="valid"), BatchNorm(), Conv2D(7, 3, padding="same", activation="gelu"),
        MaxPool(3), Dropout(0.1), GlobalAvgPool(), Dense(16, "elu"), Dense(10, "softmax"),
    ), name="extra2"),
}


def _model(spec: ModelSpec, seed: int):
    model = models.build_model(spec, TrainingConfig(seed=seed))
    # Untrained batch-norm layers are the identity; give them statistics so the arithmetic shows.
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if type(layer).__name__ == "BatchNormalization":
            size = layer.gamma.shape[0]
            layer.set_weights([rng.uniform(0.5, 1.5, size), rng.normal(0, 0.3, size), rng.normal(0, 0.3, size),
                               rng.uniform(0.2, 2.0, size)])
    return model


@pytest.fixture(scope="module")
def digit() -> tuple[np.ndarray, int]:
    data = datasets.load("mnist")
    return np.asarray(data.x_test[0, ..., 0]), int(data.y_test[0])


@pytest.fixture(scope="module")
def default_model():
    from cnn_core.service.persistence import load_default

    return load_default("mnist").model


ALL_SPECS = {key: preset.model for key, preset in PRESETS.items()} | EXTRA_SPECS


@pytest.mark.parametrize("key", sorted(ALL_SPECS))
def test_every_unit_traced_by_hand_equals_keras(key, digit):
    """Random cells of every layer of every preset: the NumPy arithmetic gives Keras's intermediate output."""
    import keras

    model = _model(ALL_SPECS[key], seed=3)
    image = digit[0]
    probe = keras.Model(model.inputs, [layer.output for layer in model.layers[1:]])
    outputs = [output[0] for output in probe(image[np.newaxis, ..., np.newaxis])]
    rng = np.random.default_rng(7)
    checked = 0
    for index, layer in enumerate(model.layers[1:], start=1):
        expected = np.asarray(outputs[index - 1])
        for _ in range(4):
            if expected.ndim == 3:
                row, col, channel = (int(rng.integers(n)) for n in expected.shape)
                keras_value = float(expected[row, col, channel])
            else:
                row = col = 0
                channel = int(rng.integers(expected.shape[0]))
                keras_value = float(expected[channel])
            trace = explain.neuron_trace(model, image, index, row, col, channel)
            assert trace.model_value == pytest.approx(keras_value, abs=1e-6)
            assert abs(trace.value - keras_value) <= 1e-4 * max(1.0, abs(keras_value)), (layer.name, row, col)
            assert trace.matches
            if trace.kind == "conv2d":
                # The parts add up: products sum plus bias is the preactivation, channel totals are sorted.
                assert trace.preactivation == pytest.approx(trace.products.sum() + trace.bias, abs=1e-9)
                assert trace.products == pytest.approx(trace.patch * trace.weights)
                totals = [abs(c.total) for c in trace.contributions]
                assert totals == sorted(totals, reverse=True) and len(totals) == trace.patch.shape[-1]
            checked += 1
    assert checked == 4 * (len(model.layers) - 1)


def test_layer_kinds_covered_by_the_checks():
    kinds = {(layer.kind, getattr(layer, "padding", None), getattr(layer, "strides", None))
             for spec in ALL_SPECS.values() for layer in spec.layers}
    for wanted in [("conv2d", "same", 1), ("conv2d", "valid", 1), ("conv2d", "same", 2), ("conv2d", "valid", 2)]:
        assert wanted in kinds
    assert {"maxpool", "avgpool", "batchnorm", "dense", "flatten", "dropout", "global_avgpool"} <= {k[0] for k in kinds}


def test_batchnorm_folded_into_a_linear_convolution_gives_the_normalised_value(digit):
    import keras

    model = _model(EXTRA_SPECS["stride2_same_avg_bn"], seed=1)
    bn_output = keras.Model(model.inputs, model.layers[2].output)(digit[0][np.newaxis, ..., np.newaxis])[0]
    for row, col, channel in [(0, 0, 0), (7, 3, 5), (13, 13, 2)]:
        folded = explain.neuron_trace(model, digit[0], 1, row, col, channel, fold_batchnorm=True)
        assert folded.folded_batchnorm
        assert folded.value == pytest.approx(float(bn_output[row, col, channel]), abs=1e-4)
        assert folded.matches
        plain = explain.neuron_trace(model, digit[0], 1, row, col, channel)
        assert not plain.folded_batchnorm and plain.value != pytest.approx(folded.value)
        # As its own step: x · scale + shift, with the statistics it came from.
        step = explain.neuron_trace(model, digit[0], 2, row, col, channel)
        assert step.patch[0] == pytest.approx(plain.value, abs=1e-5)
        d = step.details
        assert step.weights[0] == pytest.approx(d["gamma"] / np.sqrt(d["variance"] + d["epsilon"]))
        assert step.value == pytest.approx(folded.value, abs=1e-5)


def test_stride_two_same_padding_window_starts_in_the_padding(digit):
    model = _model(EXTRA_SPECS["stride2_same_avg_bn"], seed=0)
    trace = explain.neuron_trace(model, digit[0], 1, 0, 0, 0)
    # 28 → 14 with a 3×3 kernel and stride 2: TensorFlow pads 1 pixel after, none before.
    assert trace.window == (0, 0, 3, 3) and trace.stride == 2 and trace.padding == "same"
    last = explain.neuron_trace(model, digit[0], 1, 13, 13, 0)
    assert last.window == (26, 26, 3, 3)
    assert np.all(last.patch[2, :, 0] == 0) and np.all(last.patch[:, 2, 0] == 0)  # the padding row and column


def test_max_pool_names_the_winner_and_average_pool_the_mean(digit, default_model):
    trace = explain.neuron_trace(default_model, digit[0], 3, 6, 6, 0)
    assert trace.kind == "maxpool" and trace.winner is not None
    assert trace.value == pytest.approx(float(np.nanmax(trace.patch)))
    assert trace.patch[trace.winner] == pytest.approx(trace.value)
    avg_model = _model(EXTRA_SPECS["stride2_same_avg_bn"], seed=0)
    average = explain.neuron_trace(avg_model, digit[0], 3, 2, 4, 1)
    assert average.kind == "avgpool" and average.value == pytest.approx(float(np.mean(average.patch)))


def test_softmax_trace_shows_logits_and_probabilities(digit, default_model):
    image, label = digit
    last = len(default_model.layers) - 1
    trace = explain.neuron_trace(default_model, image, last, channel=label)
    assert trace.activation == "softmax" and trace.logits is not None
    assert trace.probabilities.sum() == pytest.approx(1.0)
    assert int(np.argmax(trace.probabilities)) == label
    assert trace.preactivation == pytest.approx(trace.logits[label], abs=1e-4)
    products = [item[3] for item in trace.top_inputs]
    assert len(products) == explain.TOP_INPUTS
    assert [abs(p) for p in products] == sorted((abs(p) for p in products), reverse=True)
    assert trace.matches


def test_receptive_field_grows_layer_by_layer(default_model):
    sizes = [explain.receptive_field(default_model, i, 1, 1).height
             for i, layer in enumerate(default_model.layers) if i and layer.name.startswith(("conv", "maxpool"))]
    assert sizes == sorted(sizes) and sizes[0] == 3 and sizes[-1] > sizes[0]
    # A corner unit of the first 'same' convolution sees a 2×2 corner (the rest is padding).
    assert explain.receptive_field(default_model, 1, 0, 0) == explain.PixelBox(0, 0, 2, 2)
    assert explain.receptive_field(default_model, 1, 5, 9) == explain.PixelBox(4, 8, 7, 11)
    dense = next(i for i, layer in enumerate(default_model.layers) if layer.name.startswith("dense"))
    assert explain.receptive_field(default_model, dense, 0, 0) == explain.PixelBox(0, 0, 28, 28)


def test_occluding_the_ink_costs_more_than_occluding_the_background(default_model):
    data = datasets.load("mnist")
    checked = 0
    for index in range(1, 6):
        image, label = data.x_test[index, ..., 0], int(data.y_test[index])
        drops = explain.occlusion_map(default_model, image, label)
        assert drops.shape == (28, 28) and drops.dtype == np.float32
        ink = ndimage.binary_dilation(image > 0.3, iterations=1)
        assert drops[ink].mean() > 2 * drops[~ink].mean()
        checked += 1
    assert checked == 5


def test_saliency_of_a_digit_in_one_corner_lies_in_that_corner(default_model):
    data = datasets.load("mnist")
    for index in range(4):
        small = np.clip(ndimage.zoom(data.x_test[index, ..., 0], 0.5, order=1), 0, 1)
        image = np.zeros((28, 28), dtype=np.float32)
        image[14:, 14:] = small  # bottom-right
        probabilities = default_model(image[np.newaxis, ..., np.newaxis]).numpy()[0]
        saliency = explain.saliency_map(default_model, image, int(np.argmax(probabilities)))
        assert saliency.shape == (28, 28)
        assert np.abs(saliency).sum() == pytest.approx(1.0, abs=1e-4)
        assert np.abs(saliency[14:, 14:]).sum() > 0.9


def test_saliency_is_repeatable_and_differs_per_class(digit, default_model):
    first = explain.saliency_map(default_model, digit[0], 7)
    assert np.array_equal(first, explain.saliency_map(default_model, digit[0], 7))
    assert not np.allclose(first, explain.saliency_map(default_model, digit[0], 9))


def test_conv_cell_matches_the_playground_numpy_convolution():
    from cnn_core.engine import ops

    rng = np.random.default_rng(0)
    image, kernel = rng.random((7, 7)), rng.normal(size=(3, 3))
    for padding in ("valid", "same"):
        for stride in (1, 2):
            expected = ops.conv2d(image, kernel, padding=padding, stride=stride)
            for row in range(expected.shape[0]):
                for col in range(expected.shape[1]):
                    cell = explain.conv_cell(image, kernel, row, col, stride=stride, padding=padding)
                    assert cell["value"] == pytest.approx(expected[row, col])
            assert explain.output_size(7, 3, stride, padding) == expected.shape[0]


def test_bad_requests_say_what_to_change(digit, default_model):
    with pytest.raises(UserError, match="row must be from 0 to 27"):
        explain.neuron_trace(default_model, digit[0], 1, 28, 0, 0)
    with pytest.raises(UserError, match="input layer"):
        explain.neuron_trace(default_model, digit[0], 0)
    with pytest.raises(UserError, match="class must be"):
        explain.saliency_map(default_model, digit[0], 10)
    with pytest.raises(UserError, match="patch"):
        explain.occlusion_map(default_model, digit[0], 1, patch=0)
    with pytest.raises(UserError, match="image is"):
        explain.saliency_map(default_model, np.zeros((20, 20)), 1)
