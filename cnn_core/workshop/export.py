"""A run as plain Keras: "Download as script" (.py) and "Download as notebook" (.ipynb).

The code is what the classic tutorials the presets come from look like: load MNIST, scale it,
a `keras.Sequential` of the exact layers, `model.compile` with the run's optimizer and schedule,
`model.fit` with its batch size, epochs and validation split, `model.evaluate`. Nothing of this
app is imported, so a learner can run it anywhere Keras is installed. Two environment variables
help where there is no internet or little time: `CNN_DATA_NPZ` (a local copy of the dataset as
an .npz with x_train, y_train, x_test, y_test; the app's bundled copy is tried by default) and
`CNN_EXPORT_SUBSET` (train on the first N images only).
"""

from __future__ import annotations

from cnn_core.engine import registry, specs
from cnn_core.engine.errors import UserError
from cnn_core.engine.specs import (
    AvgPool,
    BatchNorm,
    Conv2D,
    Dense,
    Dropout,
    Experiment,
    Flatten,
    GlobalAvgPool,
    MaxPool,
)

KERAS_DATASETS = ("mnist", "fashion_mnist")
OPTIMIZERS = {"adam": "Adam", "rmsprop": "RMSprop", "sgd": "SGD", "adamw": "AdamW", "nadam": "Nadam"}


def _layer_code(layer: specs.Layer) -> str:
    match layer:
        case Conv2D():
            extra = ""
            if layer.strides != 1:
                extra += f", strides={layer.strides}"
            if layer.padding != "valid":
                extra += f', padding="{layer.padding}"'
            return f'layers.Conv2D({layer.filters}, {layer.kernel_size}{extra}, activation="{layer.activation}")'
        case MaxPool():
            return f"layers.MaxPooling2D({layer.pool_size})"
        case AvgPool():
            return f"layers.AveragePooling2D({layer.pool_size})"
        case GlobalAvgPool():
            return "layers.GlobalAveragePooling2D()"
        case Dropout():
            return f"layers.Dropout({layer.rate!r})"
        case BatchNorm():
            return "layers.BatchNormalization()"
        case Flatten():
            return "layers.Flatten()"
        case Dense():
            return f'layers.Dense({layer.units}, activation="{layer.activation}")'
    raise ValueError(f"Unknown layer {layer!r}.")


def _schedule_code(config: specs.TrainingConfig) -> str:
    if config.lr_schedule == "constant":
        return f"learning_rate = {config.learning_rate!r}"
    lines = ["steps = math.ceil(math.ceil(len(x_train) * (1 - VALIDATION_SPLIT)) / BATCH_SIZE) * EPOCHS"]
    if config.lr_schedule == "cosine":
        lines.append(f"learning_rate = keras.optimizers.schedules.CosineDecay({config.learning_rate!r}, decay_steps=steps)")
    else:
        lines += [
            "# One cycle: warm up from a tenth of the peak rate, then a cosine down to zero.",
            f"warmup_steps = max(1, round(steps * {specs.ONE_CYCLE_WARMUP!r}))",
            "learning_rate = keras.optimizers.schedules.CosineDecay(",
            f"    {config.learning_rate!r} / 10, decay_steps=max(1, steps - warmup_steps),",
            f"    warmup_target={config.learning_rate!r}, warmup_steps=warmup_steps,",
            ")",
        ]
    return "\n".join(lines)


def sections(experiment: Experiment, title: str | None = None) -> list[tuple[str, str]]:
    """(markdown, code) pairs, one per step of the tutorial; the script and the notebook are made from them."""
    model, config = experiment.model, experiment.training
    specs.infer_shapes(model, max_params=None)
    name = title or model.name
    info = registry.get(config.dataset)
    if info.name not in KERAS_DATASETS or not info.bundled:
        raise UserError("Only runs on MNIST or Fashion-MNIST can be exported; Keras has no loader for this dataset.")
    loader = info.name
    # Relative, so it works from a checkout of the app and says nothing about this server's folders.
    bundled = f"data/{info.file}"
    subset = "" if config.train_subset is None else (
        f"\nx_train, y_train = x_train[:{config.train_subset}], y_train[:{config.train_subset}]  # the run's subset")
    layer_lines = "\n".join(f"        {_layer_code(layer)}," for layer in model.layers)
    callbacks = []
    extra_code = ""
    if config.target_accuracy is not None:
        extra_code += f'''

class StopAtAccuracy(keras.callbacks.Callback):
    """Stop once an epoch's training accuracy reaches the target."""

    def on_epoch_end(self, epoch, logs=None):
        if logs["accuracy"] >= {config.target_accuracy!r}:
            print("\\nReached {config.target_accuracy * 100:g}% accuracy so cancelling training!")
            self.model.stop_training = True
'''
        callbacks.append("StopAtAccuracy()")
    if config.target_loss is not None:
        # The Coursera course's "myCallback", with the app's rule: at or below the target ends the run.
        extra_code += f'''

class StopAtLoss(keras.callbacks.Callback):
    """Stop once an epoch's training loss is at or below the target."""

    def on_epoch_end(self, epoch, logs=None):
        if logs["loss"] <= {config.target_loss!r}:
            print("\\nLoss is at or below {config.target_loss:g} so cancelling training!")
            self.model.stop_training = True
'''
        callbacks.append("StopAtLoss()")
    if config.restore_best and config.validation_split > 0:
        extra_code += '''

class KeepBest(keras.callbacks.Callback):
    """Remember the weights of the epoch with the best validation accuracy and restore them at the end."""

    def on_train_begin(self, logs=None):
        self.best, self.weights = -1.0, None

    def on_epoch_end(self, epoch, logs=None):
        if logs["val_accuracy"] > self.best:
            self.best, self.weights = logs["val_accuracy"], self.model.get_weights()

    def on_train_end(self, logs=None):
        if self.weights is not None:
            self.model.set_weights(self.weights)
'''
        callbacks.append("KeepBest()")
    optimizer = OPTIMIZERS[config.optimizer]
    return [
        (
            f"# {name}\n\nThis reproduces a training run of the app *How convolutional networks see* with plain "
            "Keras, the way the classic Keras tutorials train: load the data, build the layers, compile, fit, "
            "evaluate. Set `CNN_EXPORT_SUBSET` (e.g. 1000) to try it quickly on the first training images.",
            "import math\nimport os\n\nimport keras\nimport numpy as np\nfrom keras import layers\n\n"
            f"SEED = {config.seed}\nBATCH_SIZE = {config.batch_size}\nEPOCHS = {config.epochs}\n"
            f"VALIDATION_SPLIT = {config.validation_split!r}\n"
            "keras.utils.set_random_seed(SEED)  # the same initial weights and shuffling every run",
        ),
        (
            f"## The data\n\n{info.title}: {info.train_size:,} training and {info.test_size:,} test images of 28×28 grey "
            "pixels. Pixels are scaled to [0, 1] and get a channel axis, as Conv2D expects.",
            "def load_data():\n"
            f'    path = os.environ.get("CNN_DATA_NPZ", "{bundled}")\n'
            "    if os.path.exists(path):  # a local copy, e.g. the one bundled with the app\n"
            "        with np.load(path) as data:\n"
            '            return (data["x_train"], data["y_train"]), (data["x_test"], data["y_test"])\n'
            f"    return keras.datasets.{loader}.load_data()  # downloads once, then cached\n\n\n"
            "(x_train, y_train), (x_test, y_test) = load_data()\n"
            'x_train = x_train.reshape(-1, 28, 28, 1).astype("float32") / 255\n'
            'x_test = x_test.reshape(-1, 28, 28, 1).astype("float32") / 255'
            f"{subset}\n"
            'if os.environ.get("CNN_EXPORT_SUBSET"):\n'
            '    n = int(os.environ["CNN_EXPORT_SUBSET"])\n'
            "    x_train, y_train = x_train[:n], y_train[:n]\n"
            'print(f"{len(x_train):,} training images, {len(x_test):,} test images")',
        ),
        (
            "## The model\n\nThe exact layers of the run, ending in a softmax over the "
            f"{model.num_classes} classes.",
            "model = keras.Sequential(\n    [\n"
            f"        keras.Input(shape={tuple(model.input_shape)!r}),\n{layer_lines}\n    ]\n)\nmodel.summary()",
        ),
        (
            "## Compile\n\n"
            f"Optimizer {optimizer} with learning rate {config.learning_rate:g}"
            + ("" if config.lr_schedule == "constant" else f" ({config.lr_schedule.replace('_', '-')} schedule)")
            + "; the labels are class numbers, hence sparse categorical cross-entropy.",
            f"{_schedule_code(config)}\n"
            "model.compile(\n"
            f"    optimizer=keras.optimizers.{optimizer}(learning_rate=learning_rate),\n"
            '    loss="sparse_categorical_crossentropy",\n'
            '    metrics=["accuracy"],\n'
            ")",
        ),
        (
            "## Train\n\nKeras holds back the last "
            f"{config.validation_split:.0%} of the training images for validation.",
            f"{extra_code.strip()}\n\n".lstrip("\n")
            + "history = model.fit(\n"
            "    x_train, y_train, batch_size=BATCH_SIZE, epochs=EPOCHS, validation_split=VALIDATION_SPLIT,\n"
            f"    callbacks=[{', '.join(callbacks)}],\n"
            ")",
        ),
        (
            "## Test\n\nThe score on the 10,000 test images the model never saw.",
            "test_loss, test_accuracy = model.evaluate(x_test, y_test, verbose=0)\n"
            'print(f"Parameters: {model.count_params()}")\n'
            'print(f"Test accuracy: {test_accuracy:.4f}")',
        ),
    ]


def script(experiment: Experiment, title: str | None = None) -> str:
    """The run as one runnable .py file: the introduction as its docstring, each step under a comment."""
    (intro, setup), *steps = sections(experiment, title)
    heading, _, body = intro.partition("\n\n")
    parts = [f'"""{heading.lstrip("# ")}\n\n{body}\n"""\n\n{setup}']
    for markdown, code in steps:
        comment = "\n".join(f"# {line}".rstrip() for line in markdown.replace("## ", "").splitlines())
        parts.append(f"{comment}\n{code}")
    return "\n\n\n".join(parts) + "\n"


def notebook(experiment: Experiment, title: str | None = None) -> str:
    """The run as a Jupyter notebook (nbformat 4 JSON), one markdown and one code cell per step."""
    import nbformat
    from nbformat import v4

    cells = []
    for markdown, code in sections(experiment, title):
        cells += [v4.new_markdown_cell(markdown), v4.new_code_cell(code)]
    book = v4.new_notebook(cells=cells, metadata={
        "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
        "language_info": {"name": "python"},
    })
    nbformat.validate(book)
    return nbformat.writes(book)


def file_stem(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "_-" else "_" for ch in name).strip("_") or "run"

