import io
import json
import zipfile

import numpy as np
import pytest

from cnn_core.engine import specs
from cnn_core.engine.models import build_model
from cnn_core.engine.specs import (
    BatchNorm,
    Conv2D,
    Dense,
    Dropout,
    Experiment,
    Flatten,
    MaxPool,
    ModelSpec,
    TrainingConfig,
)
from cnn_core.service import persistence
from cnn_core.service.persistence import (
    ModelBundle,
    load_bundle,
    load_default,
    load_upload,
    model_to_bytes,
    save_bundle,
)

SPEC = ModelSpec((Conv2D(4, 3), BatchNorm(), MaxPool(2), Dropout(0.2), Flatten(), Dense(10, "softmax")), name="small")
EXPERIMENT = Experiment(SPEC, TrainingConfig(dataset="fashion_mnist", epochs=3, seed=5))
IMAGES = np.random.default_rng(0).random((8, 28, 28, 1), dtype=np.float32)


def predict(model) -> np.ndarray:
    return np.asarray(model(IMAGES, training=False))


@pytest.fixture
def bundle() -> ModelBundle:
    model = build_model(SPEC, EXPERIMENT.training)
    return ModelBundle(model, EXPERIMENT, {"test_accuracy": np.float32(0.875), "epochs": 3}, "My model 1!", "trained")


def keras_bytes(model) -> bytes:
    """What a learner's own `model.save('x.keras')` produces: no embedded description."""
    return model_to_bytes(model)


def test_round_trip_gives_identical_predictions(bundle, tmp_path):
    path = save_bundle(bundle, tmp_path)
    assert path == tmp_path / "My_model_1.keras"
    assert (tmp_path / "My_model_1.json").exists()
    loaded = load_bundle(path)
    assert np.array_equal(predict(loaded.model), predict(bundle.model))
    assert loaded.experiment == EXPERIMENT
    assert loaded.metrics == {"test_accuracy": 0.875, "epochs": 3}
    assert loaded.name == "My_model_1" and loaded.source == "trained"
    assert loaded.dataset == "fashion_mnist"
    # Either file of the pair names the bundle.
    assert load_bundle(tmp_path / "My_model_1.json").name == "My_model_1"


def test_saved_description_is_plain_json(bundle, tmp_path):
    save_bundle(bundle, tmp_path)
    description = json.loads((tmp_path / "My_model_1.json").read_text())
    assert description["source"] == "trained" and description["dataset"] == "fashion_mnist"
    assert description["experiment"]["training"]["seed"] == 5
    assert len(description["keras_sha256"]) == 64


@pytest.mark.parametrize("name", ["", "   ", "../evil", "a/b", "a\\b", ".hidden", "..", "!!!"])
def test_bad_names_are_refused(bundle, tmp_path, name):
    bundle.name = name
    with pytest.raises(ValueError, match="name"):
        save_bundle(bundle, tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_unknown_source_and_unserialisable_metrics_write_nothing(bundle, tmp_path):
    bundle.source = "stolen"
    with pytest.raises(ValueError, match="source"):
        save_bundle(bundle, tmp_path)
    bundle.source = "trained"
    bundle.metrics = {"model": object()}
    with pytest.raises(TypeError):
        save_bundle(bundle, tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_crash_while_writing_the_model_keeps_the_old_files(bundle, tmp_path, monkeypatch):
    path = save_bundle(bundle, tmp_path)
    before = predict(bundle.model)
    old_bytes = path.read_bytes()

    newer = build_model(SPEC, TrainingConfig(seed=99))

    def crashing_save(target, *args, **kwargs):
        with open(target, "wb") as handle:
            handle.write(b"PK\x03\x04 half a model")
        raise OSError("disk full")

    monkeypatch.setattr(newer, "save", crashing_save)
    with pytest.raises(OSError, match="disk full"):
        save_bundle(ModelBundle(newer, EXPERIMENT, {}, "My model 1!", "trained"), tmp_path)

    assert path.read_bytes() == old_bytes
    assert sorted(p.name for p in tmp_path.iterdir()) == ["My_model_1.json", "My_model_1.keras"]
    assert np.array_equal(predict(load_bundle(path).model), before)


def test_crash_between_model_and_description_is_detected(bundle, tmp_path, monkeypatch):
    path = save_bundle(bundle, tmp_path)
    real_replace = persistence.os.replace

    def replace_but_not_json(source, target):
        if str(target).endswith(".json"):
            raise OSError("power cut")
        real_replace(source, target)

    monkeypatch.setattr(persistence.os, "replace", replace_but_not_json)
    with pytest.raises(OSError, match="power cut"):
        save_bundle(ModelBundle(build_model(SPEC, TrainingConfig(seed=99)), EXPERIMENT, {}, "My model 1!"), tmp_path)
    monkeypatch.undo()
    # The old description no longer matches the new model file, and loading says so instead of mixing them.
    with pytest.raises(ValueError, match="does not match"):
        load_bundle(path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["My_model_1.json", "My_model_1.keras"]


def test_load_bundle_errors(tmp_path, bundle):
    with pytest.raises(ValueError, match="does not exist"):
        load_bundle(tmp_path / "missing.keras")
    path = save_bundle(bundle, tmp_path)
    (tmp_path / "My_model_1.json").write_text("{broken")
    with pytest.raises(ValueError, match="not valid JSON"):
        load_bundle(path)
    (tmp_path / "My_model_1.json").unlink()
    with pytest.raises(ValueError, match="missing"):
        load_bundle(path)


def test_load_default(tmp_path, bundle):
    bundle.name = "default_mnist"
    bundle.experiment = Experiment(SPEC, TrainingConfig(dataset="mnist"))
    save_bundle(bundle, tmp_path)
    loaded = load_default("mnist", directory=tmp_path)
    assert loaded.source == "default" and loaded.dataset == "mnist"
    assert np.array_equal(predict(loaded.model), predict(bundle.model))
    with pytest.raises(ValueError, match="make models"):
        load_default("fashion_mnist", directory=tmp_path)
    with pytest.raises(ValueError, match="Unknown dataset"):
        load_default("cifar10", directory=tmp_path)


def test_download_then_upload_restores_everything(bundle):
    data = model_to_bytes(bundle.model, EXPERIMENT, {"test_accuracy": 0.9})
    uploaded = load_upload(data, "mine.keras", "fashion_mnist")
    assert uploaded.source == "uploaded" and uploaded.name == "mine"
    assert uploaded.experiment == EXPERIMENT
    assert uploaded.metrics == {"test_accuracy": 0.9}
    assert np.array_equal(predict(uploaded.model), predict(bundle.model))
    # Uploaded for another dataset: the description follows what the learner chose.
    assert load_upload(data, "mine.keras", "mnist").dataset == "mnist"


def test_upload_without_description_recovers_the_spec(bundle):
    uploaded = load_upload(keras_bytes(bundle.model), "C:\\Users\\me\\net.keras", "mnist")
    assert uploaded.name == "net"
    assert uploaded.experiment is not None
    assert uploaded.experiment.model.layers == SPEC.layers
    assert uploaded.experiment.training.dataset == "mnist"
    assert uploaded.metrics == {"spec_recovered_from_layers": True}


def test_upload_with_unknown_layers_has_no_experiment():
    import keras

    inputs = keras.Input((28, 28, 1))
    hidden = keras.layers.Conv2D(4, 3)(inputs)
    hidden = keras.layers.ReLU()(hidden)
    outputs = keras.layers.Dense(10, activation="softmax")(keras.layers.Flatten()(hidden))
    uploaded = load_upload(keras_bytes(keras.Model(inputs, outputs)), "relu.keras", "mnist")
    assert uploaded.experiment is None
    assert uploaded.dataset == "mnist"
    assert uploaded.model.count_params() == 40 + 26 * 26 * 4 * 10 + 10


def test_spec_from_model_matches_build_model_for_random_specs():
    import random

    from tests.core.engine.test_specs import random_valid_spec

    rng = random.Random(3)
    for _ in range(10):
        spec = random_valid_spec(rng)
        recovered = persistence.spec_from_model(build_model(spec))
        assert recovered is not None and recovered.layers == spec.layers
        assert specs.count_params(recovered) == specs.count_params(spec)


@pytest.mark.parametrize(
    ("data", "filename", "fragment"),
    [
        (b"PK\x03\x04", "model.h5", "not a .keras file"),
        (b"hello, I am not a zip file", "model.keras", "not a zip archive"),
        (b"x" * 2000, "model.keras", "at most 0 MB"),
    ],
)
def test_wrong_files_are_refused(data, filename, fragment):
    with pytest.raises(ValueError, match=fragment):
        load_upload(data, filename, "mnist", max_bytes=1000)


def test_truncated_and_corrupted_uploads_are_refused(bundle):
    data = keras_bytes(bundle.model)
    with pytest.raises(ValueError, match="not a zip archive"):
        load_upload(data[: len(data) // 2], "cut.keras", "mnist")
    archive = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as source, zipfile.ZipFile(archive, "w") as target:
        for item in source.infolist():
            content = source.read(item.filename)
            if item.filename.endswith(".h5"):
                content = content[:100] + bytes(len(content) - 100)
            target.writestr(item, content)
    with pytest.raises(ValueError, match="Keras could not load"):
        load_upload(archive.getvalue(), "zeros.keras", "mnist")


def test_oversized_upload_is_refused(bundle):
    data = keras_bytes(bundle.model)
    with pytest.raises(ValueError, match="at most"):
        load_upload(data, "big.keras", "mnist", max_bytes=len(data) - 1)


def test_zip_bomb_is_refused():
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as target:
        target.writestr("config.json", "{}")
        target.writestr("model.weights.h5", bytes(60_000_000))
    data = archive.getvalue()
    assert len(data) < 1_000_000
    with pytest.raises(ValueError, match="expands to more than"):
        load_upload(data, "bomb.keras", "mnist")


def test_lambda_layer_is_refused_without_running_it(tmp_path):
    import keras

    marker = tmp_path / "ran"

    def leave_marker(x):
        marker.write_text("the uploaded code ran")
        return x

    inputs = keras.Input((28, 28, 1))
    hidden = keras.layers.Lambda(leave_marker)(inputs)
    outputs = keras.layers.Dense(10, activation="softmax")(keras.layers.Flatten()(hidden))
    data = keras_bytes(keras.Model(inputs, outputs))
    marker.unlink()
    with pytest.raises(ValueError, match="Lambda layer"):
        load_upload(data, "lambda.keras", "mnist")
    assert not marker.exists()


def rewrite_config(data: bytes, change) -> bytes:
    archive = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as source, zipfile.ZipFile(archive, "w") as target:
        for item in source.infolist():
            content = source.read(item.filename)
            if item.filename == "config.json":
                config = json.loads(content)
                change(config)
                content = json.dumps(config).encode()
            target.writestr(item, content)
    return archive.getvalue()


def test_references_outside_keras_are_refused(bundle):
    def point_at_os(config):
        config["config"]["layers"][1]["module"] = "os"

    def call_config_function(config):
        config["config"]["layers"][1]["config"]["activation"] = {
            "module": "keras.config", "class_name": "function", "config": "enable_unsafe_deserialization",
            "registered_name": "function",
        }

    data = keras_bytes(bundle.model)
    with pytest.raises(ValueError, match="not a standard Keras layer"):
        load_upload(rewrite_config(data, point_at_os), "os.keras", "mnist")
    with pytest.raises(ValueError, match="not a standard Keras layer"):
        load_upload(rewrite_config(data, call_config_function), "config.keras", "mnist")


@pytest.mark.parametrize(
    ("input_shape", "units", "activation", "fragment"),
    [
        ((32, 32, 1), 10, "softmax", r"takes inputs of shape \(32, 32, 1\)"),
        ((28, 28, 3), 10, "softmax", r"takes inputs of shape \(28, 28, 3\)"),
        ((28, 28, 1), 5, "softmax", r"outputs shape \(5,\)"),
        ((28, 28, 1), 10, "linear", "does not output probabilities"),
    ],
)
def test_wrong_shapes_are_refused(input_shape, units, activation, fragment):
    spec = ModelSpec((Flatten(), Dense(units, "softmax")), input_shape=input_shape, num_classes=units)
    import keras

    model = build_model(spec) if activation == "softmax" else keras.Sequential(
        [keras.Input(input_shape), keras.layers.Flatten(), keras.layers.Dense(units, activation=activation)]
    )
    with pytest.raises(ValueError, match=fragment) as caught:
        load_upload(keras_bytes(model), "shape.keras", "mnist")
    assert "expects input shape (28, 28, 1)" in str(caught.value)


def test_bundle_without_dataset():
    with pytest.raises(ValueError, match="does not say which dataset"):
        _ = ModelBundle(model=None, experiment=None, name="x").dataset


def test_loaded_models_are_compiled_for_evaluation(bundle, tmp_path):
    loaded = load_bundle(save_bundle(bundle, tmp_path))
    assert type(loaded.model.optimizer).__name__ == "Adam"
    loss, accuracy = loaded.model.evaluate(IMAGES, np.zeros(len(IMAGES), np.int64), verbose=0)
    assert 0.0 <= accuracy <= 1.0 and loss > 0


def test_the_shipped_models_predict_in_float32():
    from cnn_core.engine import precision
    from cnn_core.engine.inference import Predictor

    for name in ("mnist", "fashion_mnist"):
        model = persistence.load_default(name).model
        assert precision.model_precision(model) == "float32"
        assert Predictor(model).predict(np.zeros((28, 28), np.float32)).dtype == np.float32
