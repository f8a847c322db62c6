"""Model and training specifications as plain data.

A spec is what a learner edits on the Train page, what a preset stores and what a
shared link encodes. It knows nothing about TensorFlow: shape inference and parameter
counts are computed here in pure Python so a page can show them while the user types.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any, ClassVar, Literal

from cnn_core.engine import registry
from cnn_core.engine.errors import UserError

ACTIVATIONS = ("relu", "sigmoid", "tanh", "elu", "selu", "gelu", "swish", "linear", "softmax")
OPTIMIZERS = ("adam", "rmsprop", "sgd", "adamw", "nadam")
# How the learning rate moves during a run: "constant" keeps it; "cosine" lowers it along a half
# cosine to 0 by the last step; "one_cycle" first warms up from a tenth of it to the full rate over
# the first ONE_CYCLE_WARMUP of the steps, then follows the same cosine down to 0.
LR_SCHEDULES = ("constant", "cosine", "one_cycle")
ONE_CYCLE_WARMUP = 0.15
PADDINGS = ("valid", "same")

# Bounds that keep a spec trainable on a laptop CPU; the host settings may tighten them further.
MAX_FILTERS = 512
MAX_UNITS = 4096
MAX_KERNEL = 11
MAX_LAYERS = 40
MAX_EPOCHS = 100
MIN_BATCH, MAX_BATCH = 1, 4096
# A target training loss above the maximum is no target: a model that only guesses among 10 classes
# scores about 2.3; below the minimum a run would never stop by it.
MIN_TARGET_LOSS, MAX_TARGET_LOSS = 0.001, 5.0
DEFAULT_MAX_PARAMS = 5_000_000

Shape = tuple[int, ...]


@dataclass(frozen=True)
class Conv2D:
    filters: int = 32
    kernel_size: int = 3
    strides: int = 1
    padding: Literal["valid", "same"] = "valid"
    activation: str = "relu"
    kind: ClassVar[str] = "conv2d"


@dataclass(frozen=True)
class MaxPool:
    pool_size: int = 2
    kind: ClassVar[str] = "maxpool"


@dataclass(frozen=True)
class AvgPool:
    pool_size: int = 2
    kind: ClassVar[str] = "avgpool"


@dataclass(frozen=True)
class GlobalAvgPool:
    kind: ClassVar[str] = "global_avgpool"


@dataclass(frozen=True)
class Dropout:
    rate: float = 0.25
    kind: ClassVar[str] = "dropout"


@dataclass(frozen=True)
class BatchNorm:
    kind: ClassVar[str] = "batchnorm"


@dataclass(frozen=True)
class Flatten:
    kind: ClassVar[str] = "flatten"


@dataclass(frozen=True)
class Dense:
    units: int = 128
    activation: str = "relu"
    kind: ClassVar[str] = "dense"


Layer = Conv2D | MaxPool | AvgPool | GlobalAvgPool | Dropout | BatchNorm | Flatten | Dense
LAYER_TYPES: dict[str, type] = {
    cls.kind: cls for cls in (Conv2D, MaxPool, AvgPool, GlobalAvgPool, Dropout, BatchNorm, Flatten, Dense)
}
SPATIAL_LAYERS = ("conv2d", "maxpool", "avgpool")


@dataclass(frozen=True)
class ModelSpec:
    """The architecture: an input shape and a stack of layers ending in a softmax classifier."""

    layers: tuple[Layer, ...]
    input_shape: Shape = (28, 28, 1)
    num_classes: int = 10
    name: str = "custom"

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "input_shape": list(self.input_shape),
            "num_classes": self.num_classes,
            "layers": [layer_to_dict(layer) for layer in self.layers],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelSpec:
        if not isinstance(data, dict) or not isinstance(data.get("layers"), list | tuple):
            raise UserError("A model spec needs a 'layers' list; check the JSON you pasted or loaded.")
        shape, classes = data.get("input_shape", (28, 28, 1)), data.get("num_classes", 10)
        try:
            input_shape = tuple(int(v) for v in shape)
            num_classes = int(classes)
        except (TypeError, ValueError, OverflowError):
            raise UserError(
                f"The input shape {shape!r} and number of classes {classes!r} must be whole numbers, "
                "such as [28, 28, 1] and 10."
            ) from None
        return cls(
            layers=tuple(layer_from_dict(item) for item in data["layers"]),
            input_shape=input_shape,
            num_classes=num_classes,
            name=str(data.get("name", "custom")),
        )


@dataclass(frozen=True)
class TrainingConfig:
    """How to train: data, optimiser, schedule and the stopping rules the seed notebooks use."""

    dataset: str = "mnist"
    optimizer: str = "adam"
    learning_rate: float = 1e-3
    # The learning rate above is the peak of the schedule (see LR_SCHEDULES).
    lr_schedule: str = "constant"
    batch_size: int = 64
    epochs: int = 5
    validation_split: float = 0.1
    seed: int = 0
    # Use only the first N training images (None: all of them) for quick runs.
    train_subset: int | None = None
    # Stop as soon as training accuracy reaches this value (seed 002's callback).
    target_accuracy: float | None = None
    # Stop as soon as an epoch's training loss is at or below this (the Coursera course's "myCallback").
    target_loss: float | None = None
    # Keep the weights of the epoch with the best validation accuracy (seed fashion notebook).
    restore_best: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainingConfig:
        if not isinstance(data, dict):
            raise UserError("The training settings must be an object of named values, such as {\"epochs\": 5}.")
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise UserError(f"Unknown training settings {sorted(unknown)}; use only {sorted(known)}.")
        return cls(**data)


@dataclass(frozen=True)
class LayerInfo:
    """One row of the live summary: what a layer outputs and how many weights it has."""

    index: int
    kind: str
    description: str
    output_shape: Shape
    params: int


@dataclass(frozen=True)
class Experiment:
    """A model spec together with its training config: what a run, a preset or a link describes."""

    model: ModelSpec
    training: TrainingConfig = field(default_factory=TrainingConfig)

    def to_json(self) -> str:
        return json.dumps({"model": self.model.to_dict(), "training": self.training.to_dict()}, indent=2)

    @classmethod
    def from_json(cls, text: str) -> Experiment:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise UserError(f"The configuration is not valid JSON ({exc.msg} at line {exc.lineno}).") from exc
        if not isinstance(data, dict) or "model" not in data:
            raise UserError("The configuration needs a 'model' section with a 'layers' list.")
        return cls(
            model=ModelSpec.from_dict(data["model"]),
            training=TrainingConfig.from_dict(data.get("training", {})),
        )


def layer_to_dict(layer: Layer) -> dict[str, Any]:
    return {"type": layer.kind, **asdict(layer)}


def layer_from_dict(data: dict[str, Any]) -> Layer:
    if not isinstance(data, dict):
        raise UserError(f"Each layer must be an object with a 'type', got {data!r}.")
    kind = data.get("type")
    if not isinstance(kind, str) or kind not in LAYER_TYPES:
        raise UserError(f"Unknown layer type {kind!r}; use one of {', '.join(LAYER_TYPES)}.")
    cls = LAYER_TYPES[kind]
    options = {k: v for k, v in data.items() if k != "type"}
    known = {f.name for f in fields(cls)}
    unknown = set(options) - known
    if unknown:
        raise UserError(f"A {kind} layer has no settings {sorted(unknown)}; it takes {sorted(known) or 'none'}.")
    try:
        return cls(**options)
    except TypeError as exc:
        raise UserError(f"Could not read the {kind} layer: {exc}.") from exc


def describe(layer: Layer) -> str:
    """A short human label such as 'Conv2D 32 × 3×3, same, relu'."""
    match layer:
        case Conv2D():
            stride = f", stride {layer.strides}" if layer.strides != 1 else ""
            k = layer.kernel_size
            return f"Conv2D {layer.filters} × {k}×{k}{stride}, {layer.padding}, {layer.activation}"
        case MaxPool():
            return f"MaxPool {layer.pool_size}×{layer.pool_size}"
        case AvgPool():
            return f"AvgPool {layer.pool_size}×{layer.pool_size}"
        case GlobalAvgPool():
            return "GlobalAvgPool"
        case Dropout():
            return f"Dropout {layer.rate:g}"
        case BatchNorm():
            return "BatchNorm"
        case Flatten():
            return "Flatten"
        case Dense():
            return f"Dense {layer.units}, {layer.activation}"
    raise ValueError(f"Unknown layer {layer!r}.")


def _int_field(where: str, name: str, value: Any, low: int, high: int, hint: str = "") -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise UserError(f"{where}: {name} must be a whole number, got {value!r}.")
    if not low <= value <= high:
        raise UserError(f"{where}: {name} is {value}; use a value from {low} to {high}{hint}.")
    return value


def _check_activation(where: str, activation: str) -> None:
    if activation not in ACTIVATIONS:
        raise UserError(f"{where}: unknown activation {activation!r}; use one of {', '.join(ACTIVATIONS)}.")


def _conv_or_pool_size(size: int, window: int, stride: int, padding: str) -> int:
    if padding == "same":
        return math.ceil(size / stride)
    return (size - window) // stride + 1


def infer_shapes(spec: ModelSpec, max_params: int | None = DEFAULT_MAX_PARAMS) -> list[LayerInfo]:
    """Validate the spec and return each layer's output shape and parameter count.

    Every problem raises UserError naming the layer, the field and what would work, so the
    editor can show it before any TensorFlow code runs.
    """
    if not isinstance(spec, ModelSpec):
        raise UserError("Expected a ModelSpec.")
    if len(spec.input_shape) != 3 or any(
        isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in spec.input_shape
    ):
        raise UserError(f"The input shape must be (height, width, channels) of positive ints, got {spec.input_shape}.")
    _int_field("The model", "num_classes", spec.num_classes, 2, 1000)
    if not spec.layers:
        raise UserError("The model has no layers; add at least a Flatten and a Dense classifier.")
    if len(spec.layers) > MAX_LAYERS:
        raise UserError(f"The model has {len(spec.layers)} layers; keep it to {MAX_LAYERS} or fewer.")

    shape: Shape = tuple(spec.input_shape)
    infos: list[LayerInfo] = []
    for index, layer in enumerate(spec.layers):
        if not isinstance(layer, tuple(LAYER_TYPES.values())):
            raise UserError(f"Layer {index + 1} is not a known layer: {layer!r}.")
        where = f"Layer {index + 1} ({layer.kind})"
        params = 0
        spatial = len(shape) == 3
        if layer.kind in SPATIAL_LAYERS + ("global_avgpool",) and not spatial:
            raise UserError(
                f"{where} needs an image-shaped input, but it comes after Flatten/Dense; "
                "move it before the Flatten layer."
            )
        match layer:
            case Conv2D():
                _int_field(where, "filters", layer.filters, 1, MAX_FILTERS)
                _int_field(where, "kernel_size", layer.kernel_size, 1, MAX_KERNEL)
                _int_field(where, "strides", layer.strides, 1, 4)
                if layer.padding not in PADDINGS:
                    raise UserError(f"{where}: padding must be 'valid' or 'same', got {layer.padding!r}.")
                _check_activation(where, layer.activation)
                h, w, c = shape
                if layer.padding == "valid" and (layer.kernel_size > h or layer.kernel_size > w):
                    raise UserError(
                        f"{where}: the {layer.kernel_size}×{layer.kernel_size} kernel is larger than its "
                        f"{h}×{w} input; use kernel_size ≤ {min(h, w)}, padding 'same', or remove a pooling layer before it."
                    )
                oh = _conv_or_pool_size(h, layer.kernel_size, layer.strides, layer.padding)
                ow = _conv_or_pool_size(w, layer.kernel_size, layer.strides, layer.padding)
                params = layer.kernel_size * layer.kernel_size * c * layer.filters + layer.filters
                shape = (oh, ow, layer.filters)
            case MaxPool() | AvgPool():
                _int_field(where, "pool_size", layer.pool_size, 1, 8)
                h, w, c = shape
                if layer.pool_size > h or layer.pool_size > w:
                    raise UserError(
                        f"{where}: a {layer.pool_size}×{layer.pool_size} pool does not fit its {h}×{w} input; "
                        f"use pool_size ≤ {min(h, w)} or remove this pooling layer."
                    )
                shape = (h // layer.pool_size, w // layer.pool_size, c)
            case GlobalAvgPool():
                shape = (shape[2],)
            case Dropout():
                if isinstance(layer.rate, bool) or not isinstance(layer.rate, int | float) or not 0 <= layer.rate < 1:
                    raise UserError(f"{where}: rate is {layer.rate!r}; use a fraction from 0 to 0.9.")
                if layer.rate > 0.9:
                    raise UserError(f"{where}: rate {layer.rate} drops almost everything; use at most 0.9.")
            case BatchNorm():
                channels = shape[-1]
                params = 4 * channels
            case Flatten():
                shape = (math.prod(shape),)
            case Dense():
                _int_field(where, "units", layer.units, 1, MAX_UNITS)
                _check_activation(where, layer.activation)
                if len(shape) != 1:
                    raise UserError(
                        f"{where} gets an image-shaped input {shape}; add a Flatten or GlobalAvgPool layer before it."
                    )
                params = shape[0] * layer.units + layer.units
                shape = (layer.units,)
        if any(v <= 0 for v in shape):
            raise UserError(
                f"{where}: the output would be {shape}, which is empty; use a smaller kernel or pool, "
                "'same' padding, or fewer pooling layers."
            )
        infos.append(LayerInfo(index, layer.kind, describe(layer), shape, params))

    last = spec.layers[-1]
    if not (isinstance(last, Dense) and last.units == spec.num_classes and last.activation == "softmax"):
        raise UserError(
            f"The model has no classifier head; end it with Dense {spec.num_classes} units and "
            "activation 'softmax' (one output per class)."
        )
    total = sum(info.params for info in infos)
    if max_params is not None and total > max_params:
        raise UserError(
            f"The model has {total:,} parameters, above the limit of {max_params:,}; use fewer filters "
            "or units, or add a pooling layer before Flatten."
        )
    return infos


def count_params(spec: ModelSpec, max_params: int | None = DEFAULT_MAX_PARAMS) -> int:
    """The spec's parameter count; `max_params` None counts a spec of any size (one already trained)."""
    return sum(info.params for info in infer_shapes(spec, max_params=max_params))


def check_lr_schedule(name: object) -> None:
    """Raise ValueError unless `name` is one of LR_SCHEDULES."""
    if not isinstance(name, str) or name not in LR_SCHEDULES:
        raise UserError(f"Unknown learning-rate schedule {name!r}; use one of {', '.join(LR_SCHEDULES)}.")


def validate_training(config: TrainingConfig, max_epochs: int = MAX_EPOCHS, max_train_size: int | None = None) -> None:
    """Raise ValueError with a fix for any training setting that cannot work."""
    dataset = registry.get(config.dataset)
    if config.optimizer not in OPTIMIZERS:
        raise UserError(f"Unknown optimizer {config.optimizer!r}; use one of {', '.join(OPTIMIZERS)}.")
    lr = config.learning_rate
    if isinstance(lr, bool) or not isinstance(lr, int | float) or not 1e-6 <= lr <= 1.0:
        raise UserError(f"Learning rate {lr!r} is out of range; use a value from 0.000001 to 1 (0.001 is typical).")
    check_lr_schedule(config.lr_schedule)
    _int_field("Training", "batch_size", config.batch_size, MIN_BATCH, MAX_BATCH)
    _int_field("Training", "epochs", config.epochs, 1, max_epochs)
    _int_field("Training", "seed", config.seed, 0, 2**31 - 1)
    vs = config.validation_split
    if isinstance(vs, bool) or not isinstance(vs, int | float) or not 0 <= vs <= 0.5:
        raise UserError(f"Validation split {vs!r} is out of range; use a fraction from 0 to 0.5.")
    if config.train_subset is not None:
        high = dataset.train_size if max_train_size is None else min(max_train_size, dataset.train_size)
        _int_field("Training", "train_subset", config.train_subset, 100, high, " images")
    if config.target_accuracy is not None:
        ta = config.target_accuracy
        if isinstance(ta, bool) or not isinstance(ta, int | float) or not 0 < ta <= 1:
            raise UserError(f"Target accuracy {ta!r} must be a fraction above 0 and at most 1 (e.g. 0.998).")
    if config.target_loss is not None:
        tl = config.target_loss
        if isinstance(tl, bool) or not isinstance(tl, int | float) or not MIN_TARGET_LOSS <= tl <= MAX_TARGET_LOSS:
            raise UserError(
                f"Target loss {tl!r} must be a number from {MIN_TARGET_LOSS:g} to {MAX_TARGET_LOSS:g} (e.g. 0.4; a "
                "model that only guesses among 10 classes has a loss of about 2.3)."
            )
    if config.restore_best and vs == 0:
        raise UserError("Restoring the best validation weights needs a validation split above 0.")



@dataclass(frozen=True)
class Limits:
    """The caps an experiment is checked against; a server's settings give its own (`Settings.limits`).

    `max_train_size` None allows the whole training set. Plain data, so it travels as JSON
    (`dataclasses.asdict`) to a worker that checks the same experiment again on its side.
    """

    max_params: int = DEFAULT_MAX_PARAMS
    max_epochs: int = MAX_EPOCHS
    max_train_size: int | None = None


@dataclass(frozen=True)
class CheckedExperiment:
    """An experiment that passed `check_experiment`: what the queue and the trainer take.

    Only `check_experiment` makes one, so holding one means the spec builds, the training settings
    work and both are within `limits`; nothing downstream checks them again.
    """

    experiment: Experiment
    layer_infos: tuple[LayerInfo, ...]
    param_count: int
    limits: Limits
    # How many training images the run uses (after train_subset), before the validation split.
    train_images: int

    @property
    def model(self) -> ModelSpec:
        return self.experiment.model

    @property
    def training(self) -> TrainingConfig:
        return self.experiment.training


def check_experiment(experiment: object, limits: Limits | None = None) -> CheckedExperiment:
    """Validate an experiment against `limits` once; UserError with what to change otherwise.

    Checks the architecture (shapes, parameter count), the training settings, and that both fit the
    dataset in the registry (input shape, classes, images), all without loading data or TensorFlow.
    """
    limits = limits if limits is not None else Limits()
    if not isinstance(experiment, Experiment):
        raise UserError("Only an Experiment (a model spec with its training config) can be trained.")
    config = experiment.training
    epochs = config.epochs
    if isinstance(epochs, int) and not isinstance(epochs, bool) and epochs > limits.max_epochs:
        raise UserError(
            f"This app allows at most {limits.max_epochs} epochs per run; set epochs to {limits.max_epochs} or fewer."
        )
    validate_training(config, max_epochs=limits.max_epochs, max_train_size=limits.max_train_size)
    dataset = registry.get(config.dataset)
    available = dataset.train_size
    used = available if config.train_subset is None else min(config.train_subset, available)
    if limits.max_train_size is not None and used > limits.max_train_size:
        raise UserError(
            f"This run would use all {available:,} training images; this app allows "
            f"{limits.max_train_size:,} per run, so set train_subset to {limits.max_train_size:,} or fewer."
        )
    infos = infer_shapes(experiment.model, max_params=limits.max_params)
    spec = experiment.model
    if tuple(spec.input_shape) != tuple(dataset.input_shape):
        raise UserError(
            f"The model expects images of shape {tuple(spec.input_shape)}, but {dataset.title} has "
            f"{tuple(dataset.input_shape)}; set the model's input_shape to match the dataset."
        )
    if spec.num_classes < dataset.num_classes:
        raise UserError(
            f"{dataset.title} has {dataset.num_classes} classes, but the model outputs only "
            f"{spec.num_classes}; set num_classes to {dataset.num_classes}."
        )
    if math.ceil(used * (1.0 - config.validation_split)) < 1:
        raise UserError("No training images are left after the validation split; use a smaller validation_split.")
    return CheckedExperiment(experiment, tuple(infos), sum(info.params for info in infos), limits, used)
