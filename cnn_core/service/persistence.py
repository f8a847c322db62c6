"""Save, load and upload models together with the experiment and metrics that describe them.

A bundle on disk is two files side by side: `<name>.keras` (the Keras model) and `<name>.json`
(name, source, dataset, experiment, metrics and the SHA-256 of the .keras file). Both are written
atomically, so a crash mid-save leaves the previous files intact. Everything read back goes
through Keras' `safe_mode=True`; uploads are checked further before Keras sees them, because
they come from strangers.
"""

from __future__ import annotations

import io
import json
import logging
import os
import re
import tempfile
import zipfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from cnn_core.engine import datasets, specs
from cnn_core.engine.datasets import file_sha256
from cnn_core.engine.errors import UserError
from cnn_core.engine.models import make_optimizer
from cnn_core.engine.specs import Experiment, TrainingConfig

if TYPE_CHECKING:
    import keras

logger = logging.getLogger(__name__)

MODELS_DIR = Path(__file__).resolve().parents[2] / "models"
Source = Literal["default", "trained", "uploaded"]
SOURCES = ("default", "trained", "uploaded")
FORMAT_VERSION = 1
# The experiment travels inside downloaded .keras files as an extra zip member, which Keras ignores,
# so re-uploading a downloaded model restores its spec and training settings.
EMBEDDED_JSON = "cnn_playground.json"
MAX_UPLOAD_BYTES = 10_000_000
EXPECTED_INPUT_SHAPE = (28, 28, 1)
EXPECTED_CLASSES = 10
# Keras modules whose objects an uploaded model may reference. Anything else (a custom module,
# keras.config, keras.utils…) could run code or change settings while the model is rebuilt.
ALLOWED_MODULES = (
    "keras",
    "keras.layers",
    "keras.initializers",
    "keras.regularizers",
    "keras.constraints",
    "keras.activations",
    "keras.losses",
    "keras.metrics",
    "keras.optimizers",
    "keras.optimizers.schedules",
    "keras.src.models.functional",
    "keras.src.models.sequential",
)
FORBIDDEN_CLASSES = ("Lambda", "TFOpLambda")
FUNCTION_MODULES = ("keras.activations", "keras.losses", "keras.metrics")


@dataclass
class ModelBundle:
    """A model with what is known about it.

    `experiment` is None for an uploaded model whose spec could not be recovered (a .keras file
    made outside this app with layers the spec editor does not know); `dataset_name` then says
    which dataset it was uploaded for.
    """

    model: keras.Model
    experiment: Experiment | None
    metrics: dict[str, Any] = field(default_factory=dict)
    name: str = "model"
    source: Source = "trained"
    dataset_name: str | None = None

    @property
    def dataset(self) -> str:
        if self.experiment is not None:
            return self.experiment.training.dataset
        if self.dataset_name is not None:
            return self.dataset_name
        raise ValueError(f"The bundle {self.name!r} does not say which dataset it is for.")


def sanitize_name(name: str) -> str:
    """A file-name-safe version of a bundle name; ValueError for empty or path-like names."""
    if not isinstance(name, str) or not name.strip():
        raise UserError("Give the model a name, for example 'my_mnist_cnn'.")
    if "/" in name or "\\" in name or name.strip() in (".", "..") or name.startswith("."):
        raise UserError(f"The name {name!r} looks like a path; use letters, digits, '-' and '_' only.")
    cleaned = re.sub(r"[^A-Za-z0-9_-]+", "_", name.strip()).strip("_")[:80]
    if not cleaned:
        raise UserError(f"The name {name!r} has no letters or digits; use letters, digits, '-' and '_'.")
    return cleaned


def _to_builtin(value: Any) -> Any:
    # Metrics often hold NumPy scalars or arrays straight from Keras or evaluation.
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def _description(bundle: ModelBundle) -> dict[str, Any]:
    return {
        "format": FORMAT_VERSION,
        "name": bundle.name,
        "source": bundle.source,
        "dataset": bundle.dataset,
        "experiment": None if bundle.experiment is None else json.loads(bundle.experiment.to_json()),
        "metrics": bundle.metrics,
    }


def _write_atomically(final: Path, write) -> None:
    """Call `write(temp_path)` on a temporary file next to `final`, then move it into place.

    The temporary file lives in a hidden folder in the same directory: the move is then an atomic
    rename on the same file system, and a half-written file left by a killed process never matches
    a `*.keras` listing of the directory. Keras insists on the .keras suffix, so the name keeps it.
    """
    with tempfile.TemporaryDirectory(prefix=".saving-", dir=final.parent) as folder:
        temp = Path(folder) / final.name
        write(temp)
        os.replace(temp, final)


def save_bundle(bundle: ModelBundle, directory: str | Path) -> Path:
    """Write `<name>.keras` and `<name>.json` into `directory`; returns the .keras path."""
    if bundle.source not in SOURCES:
        raise UserError(f"Unknown source {bundle.source!r}; use one of {', '.join(SOURCES)}.")
    name = sanitize_name(bundle.name)
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    model_path = directory / f"{name}.keras"
    json_path = directory / f"{name}.json"
    description = _description(bundle) | {"name": name}
    # Serialise before touching the disk so bad metrics fail without leaving anything behind.
    json.dumps(description, default=_to_builtin)

    digest: dict[str, str] = {}

    def write_model(temp: Path) -> None:
        bundle.model.save(temp)
        with temp.open("rb") as handle:
            # On disk before the rename, so a power cut cannot leave a renamed but empty file.
            os.fsync(handle.fileno())
        digest["sha256"] = file_sha256(temp)

    def write_json(temp: Path) -> None:
        text = json.dumps(description | {"keras_sha256": digest["sha256"]}, indent=2, default=_to_builtin)
        with temp.open("w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())

    _write_atomically(model_path, write_model)
    _write_atomically(json_path, write_json)
    return model_path


def _compile(model, experiment: Experiment | None) -> None:
    """Compile a loaded model like `build_model` does, so `evaluate` and `fit` work on it."""
    training = experiment.training if experiment is not None else TrainingConfig()
    model.compile(optimizer=make_optimizer(training), loss="sparse_categorical_crossentropy", metrics=["accuracy"])


def _read_description(json_path: Path) -> dict[str, Any]:
    try:
        data = json.loads(json_path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise UserError(f"{json_path} is missing; a bundle needs its .json next to the .keras file.") from exc
    except json.JSONDecodeError as exc:
        raise UserError(f"{json_path} is not valid JSON ({exc.msg}); save the model again.") from exc
    if not isinstance(data, dict):
        raise UserError(f"{json_path} does not describe a model bundle; save the model again.")
    return data


def _experiment_from(data: Any, where: str) -> Experiment | None:
    if data is None:
        return None
    try:
        return Experiment.from_json(json.dumps(data))
    except (ValueError, TypeError) as exc:
        raise UserError(f"The experiment in {where} cannot be read: {exc}") from exc


def load_bundle(path: str | Path) -> ModelBundle:
    """Load `<name>.keras` and its `<name>.json` (pass either path)."""
    import keras

    path = Path(path)
    model_path, json_path = path.with_suffix(".keras"), path.with_suffix(".json")
    if not model_path.exists():
        raise UserError(f"{model_path} does not exist.")
    description = _read_description(json_path)
    expected_sha = description.get("keras_sha256")
    if expected_sha is not None and file_sha256(model_path) != expected_sha:
        raise UserError(
            f"{model_path} does not match {json_path.name} (a save was interrupted or a file was replaced); "
            "save the model again."
        )
    source = description.get("source", "trained")
    if source not in SOURCES:
        raise UserError(f"{json_path} has an unknown source {source!r}; use one of {', '.join(SOURCES)}.")
    experiment = _experiment_from(description.get("experiment"), str(json_path))
    try:
        # The optimizer state is not needed to predict or evaluate; a fresh compile below is enough.
        model = keras.models.load_model(model_path, safe_mode=True, compile=False)
    except Exception as exc:
        raise UserError(f"Keras could not load {model_path}: {exc}") from exc
    _compile(model, experiment)
    return ModelBundle(
        model=model,
        experiment=experiment,
        metrics=dict(description.get("metrics") or {}),
        name=str(description.get("name", model_path.stem)),
        source=source,
        dataset_name=description.get("dataset"),
    )


def load_default(dataset: str, directory: str | Path = MODELS_DIR) -> ModelBundle:
    """The shipped model for a dataset: `models/default_<dataset>.keras` with its .json."""
    datasets.check_name(dataset)
    model_path = Path(directory) / f"default_{dataset}.keras"
    if not model_path.exists():
        raise UserError(f"There is no default model for {dataset} at {model_path}; create it with `make models`.")
    bundle = load_bundle(model_path)
    bundle.source = "default"
    return bundle


def model_to_bytes(
    model: keras.Model, experiment: Experiment | None = None, metrics: dict[str, Any] | None = None
) -> bytes:
    """The model as .keras file bytes for a download button, with the experiment embedded if given."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "model.keras"
        model.save(path)
        if experiment is not None or metrics:
            embedded = {
                "format": FORMAT_VERSION,
                "experiment": None if experiment is None else json.loads(experiment.to_json()),
                "metrics": metrics or {},
            }
            with zipfile.ZipFile(path, "a") as archive:
                archive.writestr(EMBEDDED_JSON, json.dumps(embedded, default=_to_builtin))
        return path.read_bytes()


def _check_config(node: Any) -> None:
    """Refuse any reference to code outside the Keras modules a plain CNN needs."""
    if isinstance(node, dict):
        class_name = node.get("class_name")
        module = node.get("module")
        if class_name in FORBIDDEN_CLASSES:
            raise UserError(
                f"The model contains a {class_name} layer, which holds arbitrary Python code and is never "
                "loaded here; rebuild it with standard Keras layers only."
            )
        if module is not None and module not in ALLOWED_MODULES:
            raise UserError(
                f"The model refers to {module}.{class_name}, which is not a standard Keras layer; "
                "rebuild it with standard Keras layers only."
            )
        if class_name == "function" and module not in FUNCTION_MODULES:
            raise UserError(f"The model calls the function {node.get('config')!r}, which is not allowed here.")
        for value in node.values():
            _check_config(value)
    elif isinstance(node, list):
        for value in node:
            _check_config(value)


def _check_archive(data: bytes, filename: str, max_bytes: int) -> dict[str, Any] | None:
    """Check the zip structure and Keras config; return the embedded description if any."""
    if not zipfile.is_zipfile(io.BytesIO(data)):
        raise UserError(f"{filename} is not a .keras file (it is not a zip archive); save it with model.save('x.keras').")
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            members = archive.infolist()
            # A small zip can expand enormously; refuse before anything is decompressed.
            if len(members) > 100 or sum(m.file_size for m in members) > 5 * max_bytes:
                raise UserError(f"{filename} expands to more than {5 * max_bytes // 1_000_000} MB; upload a smaller model.")
            names = {m.filename for m in members}
            if "config.json" not in names:
                raise UserError(f"{filename} has no config.json; save the model with model.save('x.keras').")
            config = json.loads(archive.read("config.json"))
            _check_config(config)
            embedded = None
            if EMBEDDED_JSON in names:
                try:
                    embedded = json.loads(archive.read(EMBEDDED_JSON))
                except json.JSONDecodeError:
                    logger.warning("Ignoring the unreadable %s inside %s.", EMBEDDED_JSON, filename)
            return embedded if isinstance(embedded, dict) else None
    except (zipfile.BadZipFile, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"{filename} is damaged ({exc}); save the model again and re-upload it.") from exc


def _check_io(model, filename: str) -> None:
    expected = f"input shape {EXPECTED_INPUT_SHAPE} (28×28 grayscale images) and {EXPECTED_CLASSES} softmax outputs"
    inputs, outputs = model.inputs, model.outputs
    if len(inputs) != 1 or len(outputs) != 1:
        raise UserError(f"{filename} has {len(inputs)} inputs and {len(outputs)} outputs; this app expects one each: {expected}.")
    input_shape = tuple(inputs[0].shape[1:])
    if input_shape != EXPECTED_INPUT_SHAPE:
        raise UserError(f"{filename} takes inputs of shape {input_shape}; this app expects {expected}.")
    output_shape = tuple(outputs[0].shape[1:])
    if output_shape != (EXPECTED_CLASSES,):
        raise UserError(f"{filename} outputs shape {output_shape}; this app expects {expected}.")
    # Probabilities are what the pages show, so check the outputs really are a distribution.
    probe = np.random.default_rng(0).random((4, *EXPECTED_INPUT_SHAPE), dtype=np.float32)
    probe[0] = 0.0
    try:
        probabilities = np.asarray(model(probe, training=False))
    except Exception as exc:
        raise UserError(f"{filename} failed on a test image ({exc}); this app expects {expected}.") from exc
    if not (
        np.all(np.isfinite(probabilities))
        and np.all(probabilities >= -1e-6)
        and np.allclose(probabilities.sum(axis=1), 1.0, atol=1e-3)
    ):
        raise UserError(
            f"{filename} does not output probabilities (they must be ≥ 0 and sum to 1); "
            f"end the model with Dense(10, activation='softmax'). This app expects {expected}."
        )


def spec_from_model(model) -> specs.ModelSpec | None:
    """Recover a ModelSpec from a Keras model made of the layers the spec editor knows, else None."""
    import keras

    layers: list[specs.Layer] = []
    for layer in model.layers:
        config = layer.get_config()
        match layer:
            case keras.layers.InputLayer():
                continue
            case keras.layers.Conv2D():
                kernel, strides = config["kernel_size"], config["strides"]
                if (
                    kernel[0] != kernel[1] or strides[0] != strides[1] or tuple(config["dilation_rate"]) != (1, 1)
                    or not config["use_bias"] or config.get("groups", 1) != 1
                ):
                    return None
                layers.append(specs.Conv2D(config["filters"], kernel[0], strides[0], config["padding"],
                                           config["activation"]))
            case keras.layers.MaxPooling2D() | keras.layers.AveragePooling2D():
                pool, strides = config["pool_size"], config["strides"]
                if pool[0] != pool[1] or tuple(strides) != tuple(pool) or config["padding"] != "valid":
                    return None
                kind = specs.MaxPool if isinstance(layer, keras.layers.MaxPooling2D) else specs.AvgPool
                layers.append(kind(pool[0]))
            case keras.layers.GlobalAveragePooling2D():
                if config.get("keepdims"):
                    return None
                layers.append(specs.GlobalAvgPool())
            case keras.layers.Dropout():
                layers.append(specs.Dropout(float(config["rate"])))
            case keras.layers.BatchNormalization():
                if not (config["center"] and config["scale"]):
                    return None
                layers.append(specs.BatchNorm())
            case keras.layers.Flatten():
                layers.append(specs.Flatten())
            case keras.layers.Dense():
                if not config["use_bias"]:
                    return None
                layers.append(specs.Dense(config["units"], config["activation"]))
            case _:
                return None
    spec = specs.ModelSpec(layers=tuple(layers), name=model.name)
    try:
        if specs.count_params(spec) != model.count_params():
            return None
    except ValueError:
        return None
    return spec


def load_upload(
    data: bytes, filename: str, dataset: str, max_bytes: int = MAX_UPLOAD_BYTES
) -> ModelBundle:
    """Check and load a user's .keras upload; ValueError says what is wrong and what is expected.

    Refused: other file types, files over `max_bytes`, damaged archives, models referring to
    code (Lambda layers, custom objects) and models that do not map 28×28×1 images to 10
    probabilities. The experiment comes from the JSON this app embeds in downloads; failing that
    it is rebuilt from the layers when they are all ones the spec editor knows, else it is None.
    """
    import keras

    datasets.check_name(dataset)
    if not filename.lower().endswith(".keras"):
        raise UserError(f"{filename} is not a .keras file; save your model with model.save('my_model.keras').")
    if len(data) > max_bytes:
        raise UserError(f"{filename} is {len(data) / 1e6:.1f} MB; upload a model of at most {max_bytes / 1e6:.0f} MB.")
    embedded = _check_archive(data, filename, max_bytes)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "upload.keras"
        path.write_bytes(data)
        try:
            # compile=False: the optimizer and loss are not needed to predict and are one less thing to deserialise.
            model = keras.models.load_model(path, safe_mode=True, compile=False)
        except Exception as exc:
            raise UserError(
                f"Keras could not load {filename} safely ({type(exc).__name__}: {exc}); "
                "upload a model saved with model.save('x.keras') using standard layers only."
            ) from exc
    if not isinstance(model, keras.Model):
        raise UserError(f"{filename} does not contain a Keras model.")
    _check_io(model, filename)

    experiment = None
    metrics: dict[str, Any] = {}
    if embedded is not None:
        try:
            experiment = _experiment_from(embedded.get("experiment"), filename)
        except ValueError as exc:
            logger.warning("Ignoring the embedded experiment in %s: %s", filename, exc)
        if experiment is not None and specs.count_params(experiment.model) != model.count_params():
            # The description was edited or belongs to another model; trust the weights, not the label.
            experiment = None
        if isinstance(embedded.get("metrics"), dict):
            metrics = dict(embedded["metrics"])
    if experiment is None:
        spec = spec_from_model(model)
        if spec is not None:
            experiment = Experiment(spec, TrainingConfig(dataset=dataset))
            metrics["spec_recovered_from_layers"] = True
    if experiment is not None and experiment.training.dataset != dataset:
        experiment = Experiment(experiment.model, replace(experiment.training, dataset=dataset))
    _compile(model, experiment)
    stem = Path(filename.replace("\\", "/")).stem
    try:
        name = sanitize_name(stem)
    except ValueError:
        name = "uploaded_model"
    return ModelBundle(model, experiment, metrics, name, "uploaded", dataset_name=dataset)
