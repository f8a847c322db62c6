"""Health checks: dead filters, saturated units, histograms, diagnoses; overfitting on the curves."""

import numpy as np
import pytest

from cnn_core.engine import datasets, health
from cnn_core.engine.models import build_model
from cnn_core.engine.specs import Conv2D, Dense, Flatten, MaxPool, ModelSpec, TrainingConfig


@pytest.fixture(scope="module")
def images():
    return datasets.load("mnist").x_test[:300]


def _model(spec):
    return build_model(spec, TrainingConfig(seed=0))


def test_killed_filters_are_found_and_explained(images):
    model = _model(ModelSpec((Conv2D(8, 3), MaxPool(2), Flatten(), Dense(16), Dense(10, "softmax"))))
    conv = model.layers[1]
    kernel, bias = conv.get_weights()
    # Filters 1, 4 and 6 can never be positive on images in [0, 1]: all weights negative, bias negative.
    for dead in (1, 4, 6):
        kernel[..., dead] = -np.abs(kernel[..., dead]) - 0.01
        bias[dead] = -0.1
    conv.set_weights([kernel, bias])
    report = health.check(model, images)
    assert report.images == 300
    first = report.layers[0]
    assert (first.number, first.kind, first.units, first.activation) == (1, "conv2d", 8, "relu")
    assert first.dead == (1, 4, 6)
    assert first.weight_counts.sum() == kernel.size
    assert first.activation_counts.sum() > 0 and first.activation_edges[0] == 0.0
    assert report.diagnoses[0] == (
        "3 of 8 filters in layer 1 never fire on 300 test images: the learning rate may be too high."
    )
    assert [layer.name for layer in report.layers] == ["conv2d_1", "dense_4"]


def test_saturated_sigmoid_units_and_a_healthy_network(images):
    model = _model(ModelSpec((Flatten(), Dense(6, "sigmoid"), Dense(10, "softmax"))))
    dense = model.layers[2]
    kernel, bias = dense.get_weights()
    bias[[0, 5]] = [40.0, -40.0]  # stuck at 1 and at 0 whatever the image
    dense.set_weights([kernel, bias])
    report = health.check(model, images)
    assert report.layers[0].saturated == (0, 5) and report.layers[0].dead == ()
    assert "2 of 6 units in layer 2 are stuck at the ends of their sigmoid" in report.diagnoses[0]

    fine = _model(ModelSpec((Conv2D(4, 3), Flatten(), Dense(10, "softmax"))))
    healthy = health.check(fine, images)
    assert healthy.layers[0].dead == ()
    assert healthy.diagnoses == (
        "Every filter and unit fires on some of the 300 test images and none is saturated: the network looks healthy.",
    )


def _row(epoch, loss, val_loss):
    return {"epoch": epoch, "loss": loss, "accuracy": 0.9, "val_loss": val_loss, "val_accuracy": 0.9, "complete": True}


def test_overfitting_is_the_epoch_after_which_validation_rises():
    rising = [_row(0, 0.5, 0.40), _row(1, 0.3, 0.30), _row(2, 0.2, 0.33), _row(3, 0.1, 0.38)]
    assert health.overfitting_epoch(rising) == 2
    assert "epoch 2" in health.overfitting_sentence(2)
    improving = [_row(0, 0.5, 0.40), _row(1, 0.3, 0.30), _row(2, 0.2, 0.28)]
    assert health.overfitting_epoch(improving) is None
    # One bad epoch at the end is not yet a trend; noise within 2% is not either.
    assert health.overfitting_epoch([_row(0, 0.5, 0.4), _row(1, 0.3, 0.3), _row(2, 0.2, 0.35)]) is None
    noisy = [_row(0, 0.5, 0.300), _row(1, 0.3, 0.302), _row(2, 0.2, 0.303)]
    assert health.overfitting_epoch(noisy) is None
    assert health.overfitting_epoch([{"epoch": 0, "loss": 0.3, "val_loss": None}]) is None


def test_the_filmstrip_health_at_a_frame_names_filters_silent_on_the_probe(images):
    from cnn_core.engine.filmstrip import Camera, Filmstrip, FilmstripStarted

    model = _model(ModelSpec((Conv2D(8, 3), MaxPool(2), Flatten(), Dense(6, "sigmoid"), Dense(10, "softmax"))))
    camera = Camera(model, images[0], steps_per_epoch=10)
    healthy = camera.frame(0)
    assert [(p.number, p.activation, p.array.shape) for p in healthy.units] == [(4, "sigmoid", (6,))]
    assert [(p.number, p.activation) for p in healthy.maps] == [(1, "relu")]
    conv, dense = model.layers[1], model.layers[4]
    kernel, bias = conv.get_weights()
    for dead in (2, 5):
        kernel[..., dead] = -np.abs(kernel[..., dead]) - 0.01
        bias[dead] = -0.1
    conv.set_weights([kernel, bias])
    weights, dense_bias = dense.get_weights()
    dense.set_weights([weights, dense_bias + 50.0])  # every sigmoid unit pinned at 1
    sick = camera.frame(10)
    assert health.at_frame(sick) == (
        "2 of 8 filters in layer 1 never fire on the probe image: if they stay silent on the test set too (Check "
        "the network's health), the learning rate may be too high.",
        "6 of 6 units in layer 4 are stuck at the ends of their sigmoid on the probe image, so they hardly learn: "
        "try relu or a lower learning rate.",
    )
    assert health.at_frame(healthy)[-1].startswith("Most filters fire on the probe image")

    # Across the frames: one row per frame on bins every row shares, and the same after a save and load.
    strip = Filmstrip()
    strip(FilmstripStarted(images[0, ..., 0], (0, 10), 10))
    strip(healthy)
    strip(sick)
    strip = Filmstrip.from_bytes(strip.to_bytes())
    layers = health.over_filmstrip(strip.frames)
    assert [(layer.number, layer.kind, layer.units, layer.steps) for layer in layers] == [
        (1, "conv2d", 8, (0, 10)), (4, "dense", 6, (0, 10))]
    for layer in layers:
        assert layer.weight_shares.shape == (2, health.FILMSTRIP_BINS)
        assert np.allclose(layer.weight_shares.sum(axis=1), 1.0)
        assert np.allclose(layer.activation_shares.sum(axis=1), 1.0)
    sigmoid = layers[1]
    # Healthy sigmoid outputs spread over the bins; pinned ones all fall into the last bin.
    assert sigmoid.activation_shares[1, -1] == 1.0 and sigmoid.activation_shares[0, -1] < 1.0
    # The shared weight bins span both frames: the second frame's dense weights are the same, its bias moved.
    conv_values = np.concatenate([np.asarray(f.maps[0].array, np.float32).ravel() for f in strip.frames])
    assert layers[0].activation_edges[0] == pytest.approx(conv_values.min())
    assert layers[0].activation_edges[-1] == pytest.approx(conv_values.max())
