"""Save, load and upload models together with the experiment and metrics that describe them.

A bundle saved by name is one file, `<name>.keras`: the Keras model with its description (name,
source, dataset, experiment, metrics) as an extra zip member that Keras ignores. It is written
atomically (`atomic.write_atomically`), so a reader — another thread, another process, another
replica on shared storage — sees the old bundle or the new one, never a model from one save with
the description of another, and a crash mid-save leaves the previous file intact. The shipped
defaults in `models/` also have a readable `<name>.json` copy (the Home page reads their metrics
without loading TensorFlow); older saves that only have that sidecar still load, checked by its
SHA-256. `models/` is read-only to the app whatever CNN_MODELS_DIR says.

Everything read back goes through Keras' `safe_mode=True`; uploads are checked further before
Keras sees them, because they come from strangers: the archive's sizes, the config's nesting,
and the model's parameters, weight bytes, FLOPs per image and layers computed from its config
(`cnn_core.engine.model_cost`), so a 45 KB file cannot make Keras allocate gigabytes.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import tempfile
import zipfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from cnn_core.engine import datasets, models, specs
from cnn_core.engine.datasets import file_sha256
from cnn_core.engine.errors import UserError
from cnn_core.engine.model_cost import ACTIVATIONS, ModelCost, WrongInputShape, json_depth, model_cost
from cnn_core.engine.models import make_optimizer, spec_layer
from cnn_core.engine.names import safe_name
from cnn_core.engine.specs import Experiment, TrainingConfig
from cnn_core.service import atomic

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
# A Keras config.json is a few KB per layer and nests about 10 deep; these bound what is parsed at all.
MAX_CONFIG_BYTES = 4_000_000
MAX_CONFIG_DEPTH = 64
MAX_MEMBERS = 100


@dataclass(frozen=True)
class UploadLimits:
    """What an uploaded model may cost, checked from its config before Keras builds it.

    The defaults are the local profile's; the app passes the server's settings. FLOPs are per image
    (a multiply-add counts two): the largest preset needs about 25 MFLOPs, a model 100 times the
    default's makes Evaluate take minutes of every core.
    """

    max_params: int = 5_000_000
    max_mflops: float = 500.0
    max_layers: int = 64
    # One image's largest layer output, in values: 2 M float32 = 8 MB, so a batch stays small.
    max_activation_values: int = 2_000_000


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
    cleaned = safe_name(name, fallback="")
    if not cleaned:
        raise UserError(f"The name {name!r} has no letters or digits; use letters, digits, '-' and '_'.")
    return cleaned


def save_name(name: str) -> str:
    """The file name a save uses, which must be the name typed: "a b" and "a_b" cannot share a file.

    UserError for a name that would change on the way to disk, naming the one to use instead.
    """
    cleaned = sanitize_name(name)
    if cleaned != name.strip():
        raise UserError(
            f"Saved models are named with letters, digits, '-' and '_' only; save it as '{cleaned}' instead "
            "(a different name would share that file with another model)."
        )
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


def _is_shipped_folder(directory: Path) -> bool:
    try:
        return directory.resolve() == MODELS_DIR.resolve()
    except OSError:
        return False


def _usable_folder(directory: Path) -> None:
    """Create the models folder if needed; UserError (without server paths) when it cannot be used."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError:
        raise UserError(
            "The folder for saved models cannot be created (CNN_MODELS_DIR names a file or a place this server "
            "cannot write); download the model instead, and ask whoever runs the server to fix CNN_MODELS_DIR."
        ) from None
    if not directory.is_dir() or not os.access(directory, os.W_OK | os.X_OK):
        raise UserError(
            "The folder for saved models is not writable (see CNN_MODELS_DIR); download the model instead, "
            "and ask whoever runs the server to fix CNN_MODELS_DIR."
        )


def save_bundle(bundle: ModelBundle, directory: str | Path, *, shipped: bool = False) -> Path:
    """Write `<name>.keras` (model and description, one file) into `directory`; returns its path.

    `shipped=True` is for `make models` only: it may write into `models/` and adds the readable
    `<name>.json` copy. Anyone else gets a UserError for `models/`, which holds the shared defaults.
    """
    if bundle.source not in SOURCES:
        raise UserError(f"Unknown source {bundle.source!r}; use one of {', '.join(SOURCES)}.")
    name = save_name(bundle.name)
    directory = Path(directory)
    if not shipped and _is_shipped_folder(directory):
        raise UserError(
            "The shipped models' folder is read-only; save under another folder (set CNN_MODELS_DIR elsewhere)."
        )
    description = _description(bundle) | {"name": name}
    # Serialise before touching the disk so bad metrics fail without leaving anything behind.
    text = json.dumps(description, default=_to_builtin)
    _usable_folder(directory)
    atomic.clean_stale(directory)
    model_path = directory / f"{name}.keras"

    def write_model(temp: Path) -> None:
        bundle.model.save(temp)
        with zipfile.ZipFile(temp, "a") as archive:
            archive.writestr(EMBEDDED_JSON, text)

    atomic.write_atomically(model_path, write_model)
    if shipped:
        readable = json.dumps(description | {"keras_sha256": file_sha256(model_path)}, indent=2, default=_to_builtin)
        atomic.write_text(directory / f"{name}.json", readable)
    return model_path


def _compile(model, experiment: Experiment | None) -> None:
    """Compile a loaded model like `build_model` does, so `evaluate` and `fit` work on it."""
    training = experiment.training if experiment is not None else TrainingConfig()
    model.compile(optimizer=make_optimizer(training), loss="sparse_categorical_crossentropy", metrics=["accuracy"])


def _read_description(json_path: Path) -> dict[str, Any]:
    try:
        data = json.loads(json_path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise UserError(f"{json_path.name} is missing; a bundle needs its description next to the .keras file.") from exc
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"{json_path.name} is not valid JSON; save the model again.") from exc
    if not isinstance(data, dict):
        raise UserError(f"{json_path.name} does not describe a model bundle; save the model again.")
    return data


def _embedded_description(model_path: Path, data: bytes | None = None) -> dict[str, Any] | None:
    """The description saved inside the .keras file (or its bytes), or None for files saved before it was."""
    try:
        with zipfile.ZipFile(model_path if data is None else io.BytesIO(data)) as archive:
            if EMBEDDED_JSON not in archive.namelist():
                return None
            data = json.loads(archive.read(EMBEDDED_JSON))
    except (zipfile.BadZipFile, json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise UserError(f"{model_path.name} is damaged; save the model again.") from exc
    # A downloaded model carries only its experiment and metrics; a saved bundle says what it is.
    return data if isinstance(data, dict) and "source" in data else None


def read_description(path: str | Path) -> dict[str, Any] | None:
    """What a saved bundle says about itself (name, dataset, metrics…) without loading the model; None if unreadable."""
    model_path = Path(path).with_suffix(".keras")
    try:
        description = _embedded_description(model_path)
        return description if description is not None else _read_description(model_path.with_suffix(".json"))
    except (UserError, OSError):
        return None


def _experiment_from(data: Any, where: str) -> Experiment | None:
    if data is None:
        return None
    try:
        return Experiment.from_json(json.dumps(data))
    except (ValueError, TypeError) as exc:
        raise UserError(f"The experiment in {where} cannot be read: {exc}") from exc


def load_bundle(path: str | Path) -> ModelBundle:
    """Load a saved `<name>.keras` (pass it or its `<name>.json`), with the description inside it."""
    import keras

    path = Path(path)
    model_path, json_path = path.with_suffix(".keras"), path.with_suffix(".json")
    try:
        # Read once: another process may replace the file meanwhile, and the description and the
        # model must come from the same version of it.
        data = model_path.read_bytes()
    except FileNotFoundError:
        raise UserError(f"The model file {model_path.name} does not exist.") from None
    description = _embedded_description(model_path, data)
    if description is None:
        description = _read_description(json_path)
        expected_sha = description.get("keras_sha256")
        if expected_sha is not None and hashlib.sha256(data).hexdigest() != expected_sha:
            raise UserError(
                f"{model_path.name} does not match {json_path.name} (a save was interrupted or a file was replaced); "
                "save the model again."
            )
    source = description.get("source", "trained")
    if source not in SOURCES:
        raise UserError(f"{model_path.name} has an unknown source {source!r}; use one of {', '.join(SOURCES)}.")
    experiment = _experiment_from(description.get("experiment"), model_path.name)
    try:
        # The optimizer state is not needed to predict or evaluate; a fresh compile below is enough.
        with tempfile.TemporaryDirectory() as folder:
            copy = Path(folder) / model_path.name
            copy.write_bytes(data)
            model = keras.models.load_model(copy, safe_mode=True, compile=False)
    except Exception as exc:
        logger.warning("Keras could not load %s", model_path, exc_info=True)
        raise UserError(f"Keras could not load {model_path.name}; save the model again.") from exc
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
        raise UserError(f"There is no default model for {dataset} in models/; create it with `make models`.")
    bundle = load_bundle(model_path)
    bundle.source = "default"
    return bundle


def model_to_bytes(
    model: keras.Model, experiment: Experiment | None = None, metrics: dict[str, Any] | None = None
) -> bytes:
    """The model as .keras file bytes for a download button, with the experiment embedded if given.

    The same bytes as `engine.models.model_to_bytes`, plus one zip member that Keras ignores.
    """
    data = models.model_to_bytes(model)
    if experiment is None and not metrics:
        return data
    embedded = {
        "format": FORMAT_VERSION,
        "experiment": None if experiment is None else json.loads(experiment.to_json()),
        "metrics": metrics or {},
    }
    buffer = io.BytesIO(data)
    with zipfile.ZipFile(buffer, "a") as archive:
        archive.writestr(EMBEDDED_JSON, json.dumps(embedded, default=_to_builtin))
    return buffer.getvalue()


def _check_config(config: Any) -> None:
    """Refuse any reference to code outside the Keras modules a plain CNN needs.

    Walks with a stack, not recursion: the nesting is bounded before this runs, but a walk must
    never be what a hostile file can overflow.
    """
    stack = [config]
    while stack:
        node = stack.pop()
        if isinstance(node, list):
            stack.extend(node)
            continue
        if not isinstance(node, dict):
            continue
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
        if class_name == "function":
            if module not in FUNCTION_MODULES:
                raise UserError(f"The model calls the function {node.get('config')!r}, which is not allowed here.")
            if module == "keras.activations" and node.get("config") not in ACTIVATIONS:
                raise UserError(
                    f"The model uses keras.activations.{node.get('config')} as an activation, which is not an "
                    "activation function; use one such as 'relu' or 'softmax'."
                )
        stack.extend(node.values())


def _expected() -> str:
    return f"input shape {EXPECTED_INPUT_SHAPE} (28×28 grayscale images) and {EXPECTED_CLASSES} softmax outputs"


def _check_cost(config: dict, filename: str, limits: UploadLimits) -> ModelCost:
    """The model's cost from its config, refused above the limits before Keras allocates anything."""
    try:
        cost = model_cost(config, EXPECTED_INPUT_SHAPE, max_layers=limits.max_layers)
    except WrongInputShape as wrong:
        raise UserError(f"{filename} takes inputs of shape {wrong.shape}; this app expects {_expected()}.") from None
    if cost.output_shape != (EXPECTED_CLASSES,):
        raise UserError(f"{filename} outputs shape {cost.output_shape}; this app expects {_expected()}.")
    if cost.params > limits.max_params:
        raise UserError(
            f"{filename} has {cost.params:,} parameters ({cost.weight_bytes / 1e6:,.0f} MB of weights); "
            f"this server takes models of at most {limits.max_params:,}."
        )
    if cost.flops > limits.max_mflops * 1e6:
        raise UserError(
            f"{filename} needs {cost.flops / 1e6:,.0f} million operations per image; this server takes models of "
            f"at most {limits.max_mflops:,.0f} million (use fewer or smaller filters, or pool earlier)."
        )
    if cost.largest_activation > limits.max_activation_values:
        raise UserError(
            f"{filename} has a layer that outputs {cost.largest_activation:,} values per image; this server takes "
            f"at most {limits.max_activation_values:,} (use fewer filters, or pool earlier)."
        )
    return cost


def _check_archive(data: bytes, filename: str, max_bytes: int, limits: UploadLimits) -> dict[str, Any] | None:
    """Check the zip structure, the Keras config and the model's cost; return the embedded description if any."""
    if not zipfile.is_zipfile(io.BytesIO(data)):
        raise UserError(f"{filename} is not a .keras file (it is not a zip archive); save it with model.save('x.keras').")
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            members = archive.infolist()
            # A small zip can expand enormously; refuse before anything is decompressed. Reading a
            # member never yields more than its declared size (zipfile stops there).
            if len(members) > MAX_MEMBERS or sum(m.file_size for m in members) > 5 * max_bytes:
                raise UserError(f"{filename} expands to more than {5 * max_bytes // 1_000_000} MB; upload a smaller model.")
            by_name = {m.filename: m for m in members}
            if "config.json" not in by_name:
                raise UserError(f"{filename} has no config.json; save the model with model.save('x.keras').")
            for member in ("config.json", EMBEDDED_JSON):
                if member in by_name and by_name[member].file_size > MAX_CONFIG_BYTES:
                    raise UserError(f"{filename} has a {member} over {MAX_CONFIG_BYTES // 1_000_000} MB; "
                                    "save the model with model.save('x.keras').")
            config = _parse_json(archive.read("config.json"), filename)
            _check_config(config)
            _check_cost(config, filename, limits)
            embedded = None
            if EMBEDDED_JSON in by_name:
                try:
                    embedded = _parse_json(archive.read(EMBEDDED_JSON), filename)
                except UserError:
                    logger.warning("Ignoring the unreadable %s inside an upload.", EMBEDDED_JSON)
            return embedded if isinstance(embedded, dict) else None
    except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, EOFError, OSError) as exc:
        raise UserError(f"{filename} is damaged ({type(exc).__name__}); save the model again and re-upload it.") from exc


def _parse_json(raw: bytes, filename: str) -> Any:
    """JSON from an upload, with its nesting checked first (Python's parser recurses once per level)."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise UserError(f"{filename} is damaged (its config is not UTF-8 text); save the model again.") from None
    if json_depth(text) > MAX_CONFIG_DEPTH:
        raise UserError(f"{filename} has a config nested more than {MAX_CONFIG_DEPTH} levels deep, which no Keras "
                        "model needs; save the model with model.save('x.keras').")
    try:
        return json.loads(text)
    except (json.JSONDecodeError, RecursionError) as exc:
        raise UserError(f"{filename} is damaged (its config is not valid JSON); save the model again.") from exc


def _check_io(model, filename: str) -> None:
    expected = _expected()
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
        logger.info("The upload %s failed on a test image", filename, exc_info=True)
        raise UserError(f"{filename} failed on a test image ({type(exc).__name__}); this app expects {expected}.") from exc
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
        if isinstance(layer, keras.layers.InputLayer):
            continue
        converted = spec_layer(layer)
        if converted is None:
            return None
        layers.append(converted)
    spec = specs.ModelSpec(layers=tuple(layers), name=model.name)
    try:
        if specs.count_params(spec) != model.count_params():
            return None
    except ValueError:
        return None
    return spec


def load_upload(
    data: bytes, filename: str, dataset: str, max_bytes: int = MAX_UPLOAD_BYTES, limits: UploadLimits | None = None
) -> ModelBundle:
    """Check and load a user's .keras upload; ValueError says what is wrong and what is expected.

    Refused: other file types, files over `max_bytes`, damaged archives, models referring to
    code (Lambda layers, custom objects), models that do not map 28×28×1 images to 10
    probabilities, and models above `limits` (parameters, FLOPs per image, layers), the last
    two computed from the config before Keras allocates anything. The experiment comes from the JSON this app embeds in downloads; failing that
    it is rebuilt from the layers when they are all ones the spec editor knows, else it is None.
    """
    import keras

    datasets.check_name(dataset)
    if not filename.lower().endswith(".keras"):
        raise UserError(f"{filename} is not a .keras file; save your model with model.save('my_model.keras').")
    if len(data) > max_bytes:
        raise UserError(f"{filename} is {len(data) / 1e6:.1f} MB; upload a model of at most {max_bytes / 1e6:.0f} MB.")
    embedded = _check_archive(data, filename, max_bytes, limits or UploadLimits())
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "upload.keras"
        path.write_bytes(data)
        try:
            # compile=False: the optimizer and loss are not needed to predict and are one less thing to deserialise.
            model = keras.models.load_model(path, safe_mode=True, compile=False)
        except Exception as exc:
            # Keras's text names the server's temporary path and its own internals; the log keeps it.
            logger.info("Keras could not load the upload %s", filename, exc_info=True)
            raise UserError(
                f"Keras could not load {filename} safely ({type(exc).__name__}); "
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
