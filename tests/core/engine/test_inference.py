import threading

import numpy as np
import pytest

from cnn_core.engine.inference import Predictor
from cnn_core.engine.models import build_model
from cnn_core.engine.specs import BatchNorm, Conv2D, Dense, Dropout, Flatten, MaxPool, ModelSpec


@pytest.fixture(scope="module")
def model():
    # Batch norm and dropout behave differently in training mode, so they show that training=False is used.
    spec = ModelSpec(
        layers=(Conv2D(4, 3), BatchNorm(), MaxPool(2), Flatten(), Dropout(0.5), Dense(10, "softmax")),
        name="tiny",
    )
    return build_model(spec)


@pytest.fixture(scope="module")
def predictor(model):
    return Predictor(model)


@pytest.fixture(scope="module")
def images():
    return np.random.default_rng(0).random((5, 28, 28, 1), dtype=np.float32)


def test_predict_matches_keras_predict(model, predictor, images):
    expected = model.predict(images, verbose=0)
    for image, row in zip(images, expected, strict=True):
        probabilities = predictor.predict(image)
        assert probabilities.shape == (10,) and probabilities.dtype == np.float32
        np.testing.assert_allclose(probabilities, row, atol=1e-5)
        # A (28, 28) image without the channel axis gives the same answer.
        np.testing.assert_allclose(predictor.predict(image[..., 0]), row, atol=1e-5)
    assert predictor.predict(images[0]).sum() == pytest.approx(1.0, abs=1e-5)


def test_predict_batch_matches_keras_predict(model, predictor, images):
    np.testing.assert_allclose(predictor.predict_batch(images), model.predict(images, verbose=0), atol=1e-5)
    np.testing.assert_allclose(predictor.predict_batch(images[..., 0]), model.predict(images, verbose=0), atol=1e-5)
    assert predictor.predict_batch(images[:0]).shape == (0, 10)


def test_uint8_is_scaled_like_the_datasets(predictor, images):
    as_uint8 = (images[0] * 255).round().astype(np.uint8)
    np.testing.assert_allclose(predictor.predict(as_uint8), predictor.predict(as_uint8 / 255.0), atol=1e-6)


def test_large_batches_are_chunked(model, predictor):
    many = np.random.default_rng(1).random((1100, 28, 28), dtype=np.float32)
    np.testing.assert_allclose(predictor.predict_batch(many), model.predict(many[..., None], verbose=0), atol=1e-5)


def test_concurrent_predictions_agree(predictor, images):
    expected = [predictor.predict(image) for image in images]
    results: dict[tuple[int, int], np.ndarray] = {}

    def worker(thread: int) -> None:
        for _ in range(20):
            for index, image in enumerate(images):
                results[(thread, index)] = predictor.predict(image)

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 4 * len(images)
    for (_, index), probabilities in results.items():
        np.testing.assert_allclose(probabilities, expected[index], atol=1e-6)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda p: p.predict(np.zeros((28, 27))), "one image"),
        (lambda p: p.predict(np.zeros((1, 28, 28, 1))), "one image"),
        (lambda p: p.predict(np.zeros((28, 28, 3))), "one image"),
        (lambda p: p.predict_batch(np.zeros((28, 28))), "batch"),
        (lambda p: p.predict(np.array([["x"] * 28] * 28)), "numbers"),
    ],
)
def test_bad_shapes_raise_value_error(predictor, call, message):
    with pytest.raises(ValueError, match=message):
        call(predictor)


def test_model_needs_a_fixed_image_input():
    import keras

    inputs = keras.Input(shape=(None, None, 1))
    model = keras.Model(inputs, keras.layers.GlobalAveragePooling2D()(inputs))
    with pytest.raises(ValueError, match="fixed-size"):
        Predictor(model)


@pytest.mark.parametrize(("dataset", "goal"), [("mnist", 0.993), ("fashion_mnist", 0.915)])
def test_shipped_default_models(dataset, goal):
    from cnn_core.engine import datasets
    from cnn_core.service.persistence import MODELS_DIR, load_default

    bundle = load_default(dataset)
    assert (MODELS_DIR / f"default_{dataset}.keras").stat().st_size <= 5 * 1024 * 1024
    assert bundle.metrics["test_accuracy"] >= goal
    data = datasets.load(dataset)
    predictor = Predictor(bundle.model)
    accuracy = (predictor.predict_batch(data.x_test[:500]).argmax(axis=1) == data.y_test[:500]).mean()
    assert accuracy >= goal - 0.02


def test_default_mnist_model_reads_drawings():
    from cnn_core.engine import drawing
    from cnn_core.service.persistence import load_default

    bundle = load_default("mnist")
    assert bundle.metrics["drawn_digit_accuracy"] >= 0.97
    # Trained on generated handwriting styles (never the check set's seeds): the check set's goal, every style.
    assert bundle.metrics["style_check_accuracy"] >= 0.97
    assert min(bundle.metrics["style_check_per_style"].values()) >= 0.95
    images, labels = drawing.drawn_test_digits(100)
    predictions = Predictor(bundle.model).predict_batch(images).argmax(axis=1)
    assert (predictions == labels).mean() >= 0.95
