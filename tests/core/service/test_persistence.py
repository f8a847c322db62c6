import io
import json
import zipfile

import numpy as np
import pytest

from cnn_core.engine import specs
from cnn_core.engine.errors import UserError
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
    return ModelBundle(model, EXPERIMENT, {"test_accuracy": np.float32(0.875), "epochs": 3}, "My_model-1", "trained")


def keras_bytes(model) -> bytes:
    """What a learner's own `model.save('x.keras')` produces: no embedded description."""
    return model_to_bytes(model)


def embedded(path) -> dict:
    with zipfile.ZipFile(path) as archive:
        return json.loads(archive.read(persistence.EMBEDDED_JSON))


def test_round_trip_gives_identical_predictions(bundle, tmp_path):
    path = save_bundle(bundle, tmp_path)
    assert path == tmp_path / "My_model-1.keras"
    # One file: the description travels inside the .keras, so no reader can pair it with another save.
    assert [p.name for p in tmp_path.iterdir()] == ["My_model-1.keras"]
    loaded = load_bundle(path)
    assert np.array_equal(predict(loaded.model), predict(bundle.model))
    assert loaded.experiment == EXPERIMENT
    assert loaded.metrics == {"test_accuracy": 0.875, "epochs": 3}
    assert loaded.name == "My_model-1" and loaded.source == "trained"
    assert loaded.dataset == "fashion_mnist"
    assert load_bundle(tmp_path / "My_model-1.json").name == "My_model-1"


def test_saved_description_is_plain_json_inside_the_file(bundle, tmp_path):
    description = embedded(save_bundle(bundle, tmp_path))
    assert description["source"] == "trained" and description["dataset"] == "fashion_mnist"
    assert description["experiment"]["training"]["seed"] == 5


def test_shipped_defaults_also_get_a_readable_copy(bundle, tmp_path):
    bundle.name = "default_fashion_mnist"
    path = save_bundle(bundle, tmp_path, shipped=True)
    description = json.loads((tmp_path / "default_fashion_mnist.json").read_text())
    assert description["metrics"]["epochs"] == 3 and len(description["keras_sha256"]) == 64
    assert description["keras_sha256"] == persistence.file_sha256(path)


@pytest.mark.parametrize("name", ["", "   ", "../evil", "a/b", "a\\b", ".hidden", "..", "!!!"])
def test_bad_names_are_refused(bundle, tmp_path, name):
    bundle.name = name
    with pytest.raises(ValueError, match="name"):
        save_bundle(bundle, tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_names_that_would_share_a_file_are_refused(bundle, tmp_path):
    bundle.name = "a_b"
    save_bundle(bundle, tmp_path)
    before = (tmp_path / "a_b.keras").read_bytes()
    for other in ("a b", "a-b!", "a  b"):
        bundle.name = other
        with pytest.raises(UserError, match="save it as 'a_b'") if other != "a-b!" else pytest.raises(
                UserError, match="save it as 'a-b'"):
            save_bundle(bundle, tmp_path)
    assert (tmp_path / "a_b.keras").read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["a_b.keras"]


def test_the_shipped_models_folder_is_read_only(bundle, monkeypatch, tmp_path):
    shipped = tmp_path / "models"
    shipped.mkdir()
    monkeypatch.setattr(persistence, "MODELS_DIR", shipped)
    bundle.name = "default_mnist"
    for directory in (shipped, tmp_path / "models" / ".." / "models"):
        with pytest.raises(UserError, match="read-only"):
            save_bundle(bundle, directory)
    assert list(shipped.iterdir()) == []


def test_an_unusable_models_folder_is_a_clear_message(bundle, tmp_path):
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("x")
    for directory in (not_a_folder, not_a_folder / "below"):
        with pytest.raises(UserError, match="CNN_MODELS_DIR") as caught:
            save_bundle(bundle, directory)
        assert str(tmp_path) not in str(caught.value)


def test_unknown_source_and_unserialisable_metrics_write_nothing(bundle, tmp_path):
    bundle.source = "stolen"
    with pytest.raises(ValueError, match="source"):
        save_bundle(bundle, tmp_path)
    bundle.source = "trained"
    bundle.metrics = {"model": object()}
    with pytest.raises(TypeError):
        save_bundle(bundle, tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_crash_while_writing_the_model_keeps_the_old_file(bundle, tmp_path, monkeypatch):
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
        save_bundle(ModelBundle(newer, EXPERIMENT, {}, "My_model-1", "trained"), tmp_path)

    assert path.read_bytes() == old_bytes
    assert sorted(p.name for p in tmp_path.iterdir()) == ["My_model-1.keras"]
    assert np.array_equal(predict(load_bundle(path).model), before)


def test_stale_leftovers_of_a_killed_save_are_cleaned_by_the_next_save(bundle, tmp_path):
    import os

    leftover = tmp_path / ".saving-dead"
    leftover.mkdir()
    (leftover / "My_model-1.keras").write_bytes(b"PK half")
    os.utime(leftover, (1, 1))
    save_bundle(bundle, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["My_model-1.keras"]


def legacy_pair(bundle, tmp_path):
    """A bundle as saved before the description moved inside: .keras plus a .json with its SHA-256."""
    path = tmp_path / "old.keras"
    bundle.model.save(path)
    description = persistence._description(bundle) | {"name": "old", "keras_sha256": persistence.file_sha256(path)}
    (tmp_path / "old.json").write_text(json.dumps(description, default=persistence._to_builtin))
    return path


def test_older_two_file_bundles_still_load_and_a_mismatch_is_detected(bundle, tmp_path):
    path = legacy_pair(bundle, tmp_path)
    assert load_bundle(path).experiment == EXPERIMENT
    build_model(SPEC, TrainingConfig(seed=99)).save(path)
    with pytest.raises(UserError, match="does not match") as caught:
        load_bundle(path)
    assert str(tmp_path) not in str(caught.value)


def test_load_bundle_errors(tmp_path, bundle):
    with pytest.raises(ValueError, match="does not exist"):
        load_bundle(tmp_path / "missing.keras")
    path = legacy_pair(bundle, tmp_path)
    (tmp_path / "old.json").write_text("{broken")
    with pytest.raises(ValueError, match="not valid JSON"):
        load_bundle(path)
    (tmp_path / "old.json").unlink()
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


@pytest.mark.parametrize(("attack", "fragment"), [
    ("Dense of 650,000 units", "516,750,010 parameters"),
    ("Conv2D 12000×12000 kernel", "144,007,851 parameters"),
    ("three Conv2D 64×11×11 (under the parameter cap)", "million operations per image"),
    ("300 Conv2D layers", "more than 64 layers"),
    ("config.json nested 100,000 deep", "nested more than 64 levels"),
    ("activation keras.activations.serialize", "not an activation function"),
    ("build_config asking for a bigger layer", "built for inputs of shape"),
    ("zip bomb (300 MB of zeros)", "expands to more than"),
])
def test_hostile_uploads_are_refused_before_keras_builds_anything(attack, fragment, monkeypatch):
    import keras

    from bench.hostile_inputs import hostile_models

    def keras_must_not_run(*args, **kwargs):
        raise AssertionError("Keras was asked to build a hostile model")

    monkeypatch.setattr(keras.models, "load_model", keras_must_not_run)
    limits = persistence.UploadLimits(max_params=1_500_000, max_mflops=100, max_layers=64)
    with pytest.raises(UserError, match=fragment):
        load_upload(hostile_models()[attack], "hostile.keras", "mnist", limits=limits)


def test_the_serialize_activation_inside_a_real_model_is_a_message(bundle):
    def serialize_as_activation(config):
        config["config"]["layers"][-1]["config"]["activation"] = {
            "module": "keras.activations", "class_name": "function", "config": "serialize",
            "registered_name": "function",
        }

    with pytest.raises(UserError, match="not an activation function"):
        load_upload(rewrite_config(keras_bytes(bundle.model), serialize_as_activation), "s.keras", "mnist")


def test_a_model_within_the_limits_still_loads_and_a_damaged_one_names_no_server_path(bundle):
    limits = persistence.UploadLimits(max_params=7_000, max_mflops=1, max_layers=8)
    assert load_upload(keras_bytes(bundle.model), "ok.keras", "mnist", limits=limits).model.count_params() == 6_826
    with pytest.raises(UserError, match="at most 6,000") as caught:
        load_upload(keras_bytes(bundle.model), "ok.keras", "mnist",
                    limits=persistence.UploadLimits(max_params=6_000))
    assert "/" not in str(caught.value)
