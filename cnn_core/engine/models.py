"""Turn a validated ModelSpec into a compiled Keras model.

Every spec goes through `specs.infer_shapes` first, so a learner sees the same error message
here as in the live editor and Keras never gets a spec that cannot be built.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from cnn_core.engine import precision as precisions
from cnn_core.engine import specs
from cnn_core.engine.errors import UserError
from cnn_core.engine.names import safe_name
from cnn_core.engine.specs import (
    AvgPool,
    BatchNorm,
    CheckedExperiment,
    Conv2D,
    Dense,
    Dropout,
    Flatten,
    GlobalAvgPool,
    MaxPool,
    ModelSpec,
    TrainingConfig,
)

if TYPE_CHECKING:
    import keras

# Seeding is process-global in Keras, so two builds in different threads must not interleave
# or neither would get the weights its seed promises.
_BUILD_LOCK = threading.Lock()


# Keras' BatchNormalization keeps running averages with momentum 0.99: after n steps the starting
# guess (mean 0, variance 1) still weighs 0.99**n, 45% after the 80 steps of a 5,000-image,
# two-epoch run, and a test (which uses the averages) collapses. Averaging over about the last
# BATCHNORM_WINDOW steps settles in any run, and is Keras' 0.99 for runs of 1,000 steps or more.
BATCHNORM_WINDOW = 10
BATCHNORM_MOMENTUM = (0.9, 0.99)


def batchnorm_momentum(total_steps: int | None) -> float:
    """The running-average momentum for BatchNorm in a run of `total_steps` (Keras' 0.99 when unknown)."""
    low, high = BATCHNORM_MOMENTUM
    if not total_steps:
        return high
    return min(high, max(low, 1.0 - BATCHNORM_WINDOW / total_steps))


def _keras_layer(layer: specs.Layer, name: str, dtype=None, total_steps: int | None = None):
    import keras

    # `dtype` is a layer's own dtype policy (None: Keras' default, float32); see precision.py.
    options = {"name": name} if dtype is None else {"name": name, "dtype": dtype}
    match layer:
        case Conv2D():
            return keras.layers.Conv2D(
                layer.filters, layer.kernel_size, strides=layer.strides, padding=layer.padding,
                activation=layer.activation, **options,
            )
        case MaxPool():
            return keras.layers.MaxPooling2D(pool_size=layer.pool_size, **options)
        case AvgPool():
            return keras.layers.AveragePooling2D(pool_size=layer.pool_size, **options)
        case GlobalAvgPool():
            return keras.layers.GlobalAveragePooling2D(**options)
        case Dropout():
            return keras.layers.Dropout(layer.rate, **options)
        case BatchNorm():
            return keras.layers.BatchNormalization(momentum=batchnorm_momentum(total_steps), **options)
        case Flatten():
            return keras.layers.Flatten(**options)
        case Dense():
            return keras.layers.Dense(layer.units, activation=layer.activation, **options)
    raise ValueError(f"Unknown layer {layer!r}.")


def spec_layer(layer) -> specs.Layer | None:
    """The spec layer a Keras layer is (the inverse of `_keras_layer`), or None for one the spec editor lacks.

    Settings a spec cannot say (non-square kernels, dilation, no bias…) also give None.
    """
    import keras

    config = layer.get_config()
    match layer:
        case keras.layers.Conv2D():
            kernel, strides = config["kernel_size"], config["strides"]
            if (
                kernel[0] != kernel[1] or strides[0] != strides[1] or tuple(config["dilation_rate"]) != (1, 1)
                or not config["use_bias"] or config.get("groups", 1) != 1
            ):
                return None
            return Conv2D(config["filters"], kernel[0], strides[0], config["padding"], config["activation"])
        case keras.layers.MaxPooling2D() | keras.layers.AveragePooling2D():
            pool, strides = config["pool_size"], config["strides"]
            if pool[0] != pool[1] or tuple(strides) != tuple(pool) or config["padding"] != "valid":
                return None
            return (MaxPool if isinstance(layer, keras.layers.MaxPooling2D) else AvgPool)(pool[0])
        case keras.layers.GlobalAveragePooling2D():
            return None if config.get("keepdims") else GlobalAvgPool()
        case keras.layers.Dropout():
            return Dropout(float(config["rate"]))
        case keras.layers.BatchNormalization():
            return BatchNorm() if config["center"] and config["scale"] else None
        case keras.layers.Flatten():
            return Flatten()
        case keras.layers.Dense():
            return Dense(config["units"], config["activation"]) if config["use_bias"] else None
    return None


def describe_keras_layer(layer) -> str:
    """The label `specs.describe` gives the layer's spec (one describer for specs and models), else its class."""
    spec = spec_layer(layer)
    return specs.describe(spec) if spec is not None else type(layer).__name__


def learning_rate_schedule(training: TrainingConfig, total_steps: int | None):
    """The learning rate for the optimizer: a float, or a Keras schedule over `total_steps` steps.

    Without `total_steps` (a loaded model compiled for evaluation, whose run length is unknown)
    every schedule falls back to its peak rate, held constant.
    """
    import keras

    specs.check_lr_schedule(training.lr_schedule)
    if training.lr_schedule == "constant" or total_steps is None:
        return training.learning_rate
    if isinstance(total_steps, bool) or not isinstance(total_steps, int) or total_steps < 1:
        raise ValueError(f"A learning-rate schedule needs a positive whole number of steps, got {total_steps!r}.")
    if training.lr_schedule == "cosine":
        return keras.optimizers.schedules.CosineDecay(training.learning_rate, decay_steps=total_steps)
    # one_cycle: at least one warm-up and one decay step, so even a one-step run has a valid schedule.
    warmup_steps = max(1, round(total_steps * specs.ONE_CYCLE_WARMUP))
    return keras.optimizers.schedules.CosineDecay(
        training.learning_rate / 10,
        decay_steps=max(1, total_steps - warmup_steps),
        warmup_target=training.learning_rate,
        warmup_steps=warmup_steps,
    )


def make_optimizer(training: TrainingConfig, total_steps: int | None = None):
    """The Keras optimizer a training config names, with its learning rate or schedule over `total_steps`."""
    import keras

    classes = {
        "adam": keras.optimizers.Adam,
        "rmsprop": keras.optimizers.RMSprop,
        "sgd": keras.optimizers.SGD,
        "adamw": keras.optimizers.AdamW,
        "nadam": keras.optimizers.Nadam,
    }
    if training.optimizer not in classes:
        raise UserError(f"Unknown optimizer {training.optimizer!r}; use one of {', '.join(classes)}.")
    return classes[training.optimizer](learning_rate=learning_rate_schedule(training, total_steps))


def build_model(
    spec: ModelSpec | CheckedExperiment,
    training: TrainingConfig | None = None,
    steps_per_epoch: int | None = None,
    precision: str = "float32",
) -> keras.Model:
    """Build and compile the functional model a spec describes, with weights seeded by `training.seed`.

    A CheckedExperiment is built as checked (its training config unless `training` is given). A bare
    ModelSpec (a script's, or a copy of a model that exists) has its shapes checked with
    `specs.infer_shapes`; size limits are `specs.check_experiment`'s job, at the door.

    `steps_per_epoch` lets the optimizer's learning-rate schedule span the whole run
    (`training.epochs` epochs); without it the learning rate stays constant.

    `precision="bfloat16"` computes every layer but the classifier in bfloat16 (Keras'
    ``mixed_bfloat16``, float32 weights); the last Dense layer, its softmax and the loss stay float32.

    Layers are named after their kind and position (``conv2d_1``, ``maxpool_2``…) so feature maps
    and summaries can refer to the spec's own numbering.
    """
    if isinstance(spec, CheckedExperiment):
        training = training if training is not None else spec.training
        spec = spec.model
    else:
        specs.infer_shapes(spec, max_params=None)
    precisions.check(precision)
    training = training if training is not None else TrainingConfig()
    import keras

    total_steps = None if steps_per_epoch is None else steps_per_epoch * training.epochs
    with _BUILD_LOCK:
        keras.utils.set_random_seed(training.seed)
        inputs = keras.Input(shape=tuple(spec.input_shape), name="image")
        outputs = inputs
        hidden = precisions.layer_dtype(precision)
        last = len(spec.layers)
        for index, layer in enumerate(spec.layers, start=1):
            # The classifier stays float32 so the softmax and the loss are computed at full precision.
            dtype = hidden if index < last else ("float32" if hidden is not None else None)
            outputs = _keras_layer(layer, f"{layer.kind}_{index}", dtype, total_steps)(outputs)
        model = keras.Model(inputs, outputs, name=safe_name(spec.name))
    _compile(model, training, total_steps=total_steps)
    return model


def _compile(model: keras.Model, training: TrainingConfig, total_steps: int | None) -> None:
    model.compile(
        optimizer=make_optimizer(training, total_steps=total_steps),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )


def to_float32(model: keras.Model, training: TrainingConfig | None = None) -> keras.Model:
    """The same model computing in float32 throughout (a model already in float32 is returned as is).

    Mixed-precision weights are float32 already, so they are copied unchanged. The copy is compiled
    like `build_model` (with `training`'s optimizer at its peak rate, fresh), so a downloaded model
    evaluates or fine-tunes as usual, and it runs at full speed on any CPU.
    """
    if precisions.model_precision(model) == "float32":
        return model
    import keras

    def float32_layer(layer):
        config = layer.get_config()
        config["dtype"] = "float32"
        return layer.__class__.from_config(config)

    with _BUILD_LOCK:
        copy = keras.models.clone_model(model, clone_function=float32_layer)
    copy.set_weights(model.get_weights())
    _compile(copy, training if training is not None else TrainingConfig(), total_steps=None)
    return copy


def model_to_bytes(model) -> bytes:
    """A Keras model as the bytes of a .keras file."""
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "model.keras"
        model.save(path)
        return path.read_bytes()


def model_from_bytes(data: bytes):
    """The model `model_to_bytes` saved; safe_mode refuses files that would run arbitrary code."""
    import tempfile
    from pathlib import Path

    import keras

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "model.keras"
        path.write_bytes(data)
        return keras.saving.load_model(path, safe_mode=True)
